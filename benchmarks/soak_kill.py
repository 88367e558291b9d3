"""kill -9 soak: the kill loop of tests/test_kill.py, as long as you like, with a table of counts.

Run from the repository root:

    python benchmarks/soak_kill.py 100               # 100 kills of one bot, then a clean stop
    python benchmarks/soak_kill.py 200 --lanes 2     # two data folders killed side by side
    python benchmarks/soak_kill.py 50 --exchange ccxt  # through ccxt on the loopback fake Binance

Each iteration starts the real bot (`supervisor.run`, fast clock, a paper exchange
with network latency on create_order), kills it with SIGKILL at a random moment
(25 % during its start, the rest while it trades), then checks the database and
the paper exchange's state file: no order lost, none sent twice, positions equal
balances; after each restart the bot's reconciliation must report 0 mismatches and
resolve exactly the orders that were on the wire at the kill. Stops at the first
broken promise (exit 1, naming it and keeping the data folder). See tests/killing.py.

`--exchange ccxt`: the bot trades through the real ccxt client (`exchange.kind:
ccxt`, `base_url`) on a fake Binance served on 127.0.0.1 by this process (one per
lane; the latency is on its POST /api/v3/order), and every third kill lands while
an order request or its reply is on the wire; the fake must also never have
received two orders with one client id.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.killing import (
    EXCHANGES,
    LATENCY_MS,
    SPEED,
    InvariantBroken,
    KillLoop,
    Row,
    pretrain,
    table,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("iterations", type=int, help="kills in total (spread over the lanes)")
    parser.add_argument("--lanes", type=int, default=1, help="data folders killed in parallel")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill moments")
    parser.add_argument("--speed", type=float, default=SPEED, help="clock speed (x real time)")
    parser.add_argument("--latency-ms", type=float, default=LATENCY_MS, help="each way")
    parser.add_argument("--exchange", choices=EXCHANGES, default="paper", help="what it trades on")
    parser.add_argument("--keep", action="store_true", help="keep the data folders")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="soak-kill-"))
    models = work / "pretrained"
    pretrain(models)
    started = time.monotonic()

    def lane(i: int) -> list[Row]:
        data_dir = work / f"lane{i}"
        data_dir.mkdir()
        share = args.iterations // args.lanes + (1 if i < args.iterations % args.lanes else 0)
        with KillLoop(
            data_dir, models, args.seed + i, args.speed, args.latency_ms, args.exchange
        ) as loop:
            for _ in range(share):
                row = loop.iteration()
                print(
                    f"lane {i} iteration {row.iteration}: {row.phase}, {row.new_orders} orders, "
                    f"{row.unresolved_at_kill} unresolved after the kill",
                    flush=True,
                )
            loop.final()
        return loop.rows

    try:
        with ThreadPoolExecutor(args.lanes) as pool:
            lanes = [f.result() for f in [pool.submit(lane, i) for i in range(args.lanes)]]
    except InvariantBroken as exc:
        print(f"BROKEN: {exc}\ndata kept in {work}", file=sys.stderr)
        return 1
    for i, rows in enumerate(lanes):
        print(f"\nlane {i} ({work / f'lane{i}'}):\n{table(rows)}")
    every = [r for rows in lanes for r in rows]
    print(f"\nall lanes: {table(every).splitlines()[-1].removeprefix('total: ')}")
    print(f"{time.monotonic() - started:.0f} s; promises kept after every kill")
    if args.keep:
        print(f"data kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
