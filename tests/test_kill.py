"""kill -9 of the real bot process at random moments: nothing lost, nothing doubled.

On the paper exchange, and through the real ccxt client on the loopback fake Binance.
The loop and its checks are in `tests/killing.py` (shared with benchmarks/soak_kill.py).
Also here: a damaged database stops `python supervisor.py` before it trades.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.botproc import ROOT
from tests.killing import KillLoop, Row, Snapshot, pretrain, table

LANES = 2  # two data folders killed side by side: 2 x 10 iterations in the time of 10
ITERATIONS = 10  # per lane
CCXT_ITERATIONS = 6  # per lane (two lanes, each with its own fake Binance): 12 kills


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("pretrained") / "models"
    pretrain(models)
    return models


def kill_lanes(
    tmp_path: Path, pretrained: Path, iterations: int, exchange: str = "paper"
) -> tuple[list[Row], list[Snapshot], str]:
    """LANES kill loops side by side; their rows, each lane's state after its clean stop,
    and the report to show when an assertion fails."""
    seed = int(os.environ.get("KILL_SEED", "20261126"))

    def lane(i: int) -> tuple[list[Row], Snapshot]:
        data_dir = tmp_path / f"lane{i}"
        data_dir.mkdir()
        with KillLoop(data_dir, pretrained, seed=seed + i, exchange=exchange) as loop:
            for _ in range(iterations):
                loop.iteration()  # raises InvariantBroken, naming what broke
            loop.final()
            return loop.rows, loop.snapshot()

    with ThreadPoolExecutor(LANES) as pool:
        futures = [pool.submit(lane, i) for i in range(LANES)]
        lanes = [f.result() for f in futures]  # re-raises a lane's failure
    rows = [r for lane_rows, _ in lanes for r in lane_rows]
    report = f"{exchange}, seed {seed} (KILL_SEED to repeat)\n" + table(rows)
    for _, snap in lanes:  # after the clean stop: every order settled, both sides agree
        assert not snap.in_flight(), report
        sent = {c for c, r in snap.ledger.items() if r["state"] != "REJECTED"}
        assert sent == set(snap.exchange), report
    return rows, [snap for _, snap in lanes], report


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_and_doubles_nothing(
    tmp_path: Path, pretrained: Path
) -> None:
    rows, _, report = kill_lanes(tmp_path, pretrained, ITERATIONS)
    kills = [r for r in rows if r.phase != "final"]
    assert len(kills) >= 20, report
    assert sum(r.new_orders for r in rows) >= 40, report  # it did trade, a lot
    assert sum(r.unresolved_at_kill for r in kills) >= 1, report  # kills hit orders in flight
    assert sum(sum(r.resolved.values()) for r in rows) >= 1, report  # ... and were resolved


@pytest.mark.slow
def test_kill_9_through_ccxt_on_the_fake_binance_loses_nothing_and_doubles_nothing(
    tmp_path: Path, pretrained: Path
) -> None:
    """The same loop with `exchange.kind: ccxt`: the real ccxt client against a FakeBinance
    in this process (40 ms each way on POST /api/v3/order), whose orders and balances
    outlive every kill; on top, the fake never received two orders for one client id."""
    rows, snaps, report = kill_lanes(tmp_path, pretrained, CCXT_ITERATIONS, exchange="ccxt")
    kills = [r for r in rows if r.phase != "final"]
    assert len(kills) >= 10, report
    assert sum(r.new_orders for r in rows) >= 10, report  # it did trade through ccxt
    wire = [r for r in kills if r.phase == "wire"]  # every third kill of a lane
    assert len(wire) == LANES * (CCXT_ITERATIONS // 3), report
    assert sum(r.unresolved_at_kill for r in wire) >= 1, report  # kills hit orders in flight
    assert sum(r.resolved.get("filled", 0) for r in rows) >= 1, report  # ... found filled
    assert sum(r.reconciled for r in rows) >= len(rows) // 2, report
    for snap in snaps:  # checked after every kill too: one order per client id
        assert snap.resent == {}, report
        assert snap.exchange, report  # the fake did receive the bot's orders


@pytest.mark.slow
def test_bot_refuses_to_start_on_a_truncated_database(tmp_path: Path) -> None:
    from storage.db import Database, SqliteLedger
    from storage.ledger import OrderRow

    data_dir = tmp_path / "var"
    db = Database.open(data_dir / "tradeactors.db")
    ledger = SqliteLedger(db)
    for i in range(300):  # one commit each, as the bot writes them
        ledger.add_intent(
            OrderRow(
                client_order_id=f"ta{i:030d}",
                symbol="BTC/USDT",
                side="buy",
                intent="entry",
                amount=0.001,
                candle_ms=i * 60_000,
            )
        )
    db.close()
    path = data_dir / "tradeactors.db"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a disk that lost the second half
    settings = tmp_path / "settings.yaml"
    # its own admin port: a bot running beside the suite holds 8765, checked before the database
    settings.write_text(
        f"data_dir: {data_dir}\nuniverse: {{mode: static, symbols: [BTC/USDT]}}\n"
        "admin: {port: 0}\n"
    )
    proc = subprocess.run(
        [sys.executable, "supervisor.py", "--settings", str(settings)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, proc.stderr
    assert str(path) in errors[0] and "database is corrupt" in errors[0]
    assert "Refusing to start; the file was not changed" in errors[0]
    assert "Restore it from a backup" in errors[0]
    assert path.read_bytes() == data[: len(data) // 2]  # never silently reset
    assert not (data_dir / "paper" / "state.json").exists()  # nothing traded


_OWNER = """
import sys, time
from models.pool import TrainingPool
from models.synthetic import random_walk_candles
from models.training import TrainingError, TrainJob, TrainParams

pool = TrainingPool(workers=1, kind="process")
job = TrainJob("A/USDT", "1m", random_walk_candles(100), sys.argv[1], TrainParams())
try:
    pool.submit(job).result(timeout=120)
except TrainingError:
    pass  # too few rows: the job only has to reach a worker
print(*pool.worker_pids(), flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # dead, waiting to be reaped


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
def test_training_workers_exit_when_the_bot_is_killed(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert owner.stdout is not None
        workers = [int(p) for p in owner.stdout.readline().split()]
        assert workers, "no worker process started"
        forkserver = _parent(workers[0])
        owner.kill()  # kill -9 of the bot
        owner.wait(timeout=30)
        deadline = time.monotonic() + 15
        while not all(_gone(p) for p in [*workers, forkserver]):
            assert time.monotonic() < deadline, "training processes outlived the killed bot"
            time.sleep(0.05)  # waiting for real processes to exit
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(owner.pid, signal.SIGKILL)
