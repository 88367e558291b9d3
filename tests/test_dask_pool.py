"""Training on a Dask cluster (models.dask_pool), on a real local cluster bound to 127.0.0.1.

The module shares one pool that started its own local cluster (training.dask.scheduler
empty, as the bot does), with two worker processes; the other pools connect to that
cluster's scheduler by address, as to a `dask scheduler` started elsewhere.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import psutil
import pytest

from actors.messages import TrainerFinished, TrainerStarted
from config.settings import DaskSettings, Settings, SettingsError, load_settings
from models import artifacts
from models.dask_pool import DaskTrainingPool, version_problem, worker_versions
from models.synthetic import random_walk_candles
from models.training import TrainingError, TrainJob, TrainParams
from policy.lifecycle import SymbolState
from tests.harness import Bot, until
from tests.test_recovery import records

pytestmark = pytest.mark.slow

# small and fast; the gate lets any model through (these tests are about the transport)
SMALL = TrainParams(
    max_iter=10, horizon_bars=2, label_margin=0.0, min_rows=500, min_net_return_pct=-100, min_auc=0
)


@pytest.fixture(scope="module")
def owner() -> Iterator[DaskTrainingPool]:
    pool = DaskTrainingPool(workers=2)
    yield pool
    pool.shutdown()


@pytest.fixture
def scheduler(owner: DaskTrainingPool) -> str:
    until(lambda: owner.client is not None, "the local cluster started")
    return str(owner.client.scheduler.address)


class Borrowed:
    """The module's pool, lent to one bot: the bot's stop must not close the shared cluster."""

    def __init__(self, pool: DaskTrainingPool) -> None:
        self.pool = pool
        self.submit, self.in_flight, self.wait_idle = pool.submit, pool.in_flight, pool.wait_idle
        self.worker_pids = pool.worker_pids

    def shutdown(self, cancel_pending: bool = True) -> None:
        pass


def make_job(tmp_path: Path, candles: np.ndarray, params: TrainParams = SMALL) -> TrainJob:
    return TrainJob("A/USDT", "1m", candles, str(artifacts.new_staging_dir(tmp_path)), params)


def listening(pid: int) -> set[str]:
    return {
        c.laddr.ip for c in psutil.Process(pid).net_connections("tcp") if c.status == "LISTEN"
    }


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the pure parts ----------------------------------------------------------------------


def test_version_problem_names_what_differs() -> None:
    bot = worker_versions()
    assert version_problem(bot, dict(bot)) is None
    assert version_problem(bot, {**bot, "numpy": bot["numpy"].split(".")[0] + ".999"}) is None
    problem = version_problem(bot, {**bot, "scikit-learn": "0.0.1", "python": "2.7"})
    assert problem == (
        f"it has scikit-learn 0.0.1 (the bot: {bot['scikit-learn']}), python 2.7 (the bot: "
        f"{bot['python']}); a model pickled there may not load here"
    )
    assert "model code abc" in str(version_problem(bot, {**bot, "model code": "abc"}))


def test_staged_files_travel_as_bytes_and_publish_as_from_a_local_fit(tmp_path: Path) -> None:
    from models.training import run_training

    job = make_job(tmp_path / "worker", random_walk_candles(3000, seed=8, momentum=0.3))
    run_training(job)
    files = artifacts.staged_files(job.staging_dir)
    assert sorted(files) == [artifacts.MANIFEST_FILE, artifacts.MODEL_FILE]
    here = artifacts.new_staging_dir(tmp_path / "bot")
    artifacts.write_staged_files(here, files)
    published = artifacts.publish(tmp_path / "bot", here)
    assert artifacts.load_version(tmp_path / "bot" / published.version).symbol == "A/USDT"

    with pytest.raises(artifacts.ArtifactError, match=r"'\.\./x' is not a plain file name"):
        artifacts.write_staged_files(tmp_path / "s2", {**files, "../x": b""})
    broken = artifacts.new_staging_dir(tmp_path / "bot")
    artifacts.write_staged_files(broken, {**files, artifacts.MODEL_FILE: b"tampered"})
    with pytest.raises(artifacts.ArtifactError, match="checksum mismatch"):
        artifacts.publish(tmp_path / "bot", broken)


def test_dask_settings(tmp_path: Path) -> None:
    assert Settings().training.backend == "processes"
    path = tmp_path / "s.yaml"
    path.write_text("training:\n  backend: dask\n  dask:\n    scheduler: 10.0.0.5:8786\n")
    with pytest.raises(SettingsError, match=r"scheduler '10.0.0.5:8786' needs a protocol"):
        load_settings(path)
    path.write_text("training:\n  backend: ray\n")
    with pytest.raises(SettingsError, match=r"backend"):
        load_settings(path)
    assert DaskSettings(scheduler="tcp://10.0.0.5:8786").threads_per_fit == 1


# --- through the bot ---------------------------------------------------------------------


def test_one_symbol_trained_end_to_end_on_a_local_cluster_bound_to_loopback(
    bots: list[Bot], tmp_path: Path, owner: DaskTrainingPool
) -> None:
    bot = Bot(tmp_path, ["BTC/USDT"], pool=Borrowed(owner))
    bots.append(bot)
    bot.start()
    assert [(f.symbol, f.ok) for f in bot.events.of(TrainerFinished)] == [("BTC/USDT", True)]
    assert records(bot)["BTC/USDT"].state is SymbolState.ACTIVE
    models_dir = Path(bot.settings.data_dir) / "models"
    [version] = artifacts.list_versions(models_dir)
    loaded = artifacts.load_version(version)  # checksum verified against the worker's manifest
    assert loaded.symbol == "BTC/USDT" and loaded.manifest.rows > 2000
    assert not list((models_dir / artifacts.STAGING).iterdir())  # published, nothing left

    workers = owner.worker_pids()
    assert len(workers) == 2 and os.getpid() not in workers
    for pid in [os.getpid(), *workers]:
        assert listening(pid) == {"127.0.0.1"}, f"process {pid} listens beyond loopback"


def test_a_worker_killed_mid_fit_fails_the_training_with_backoff(
    bots: list[Bot], tmp_path: Path, owner: DaskTrainingPool, scheduler: str
) -> None:
    pool = DaskTrainingPool(scheduler)
    bot = Bot(tmp_path, ["ETH/USDT"], pool=pool, training={"max_iter": 200})
    bots.append(bot)
    bot.start(wait=False)  # no model: the startup evaluation starts a trainer
    busy: list[str] = []

    def fitting() -> bool:
        busy[:] = [w for w, keys in owner.client.processing().items() if keys]
        return bool(busy)

    until(fitting, "a fit on a worker")
    killed = owner.client.run(os.getpid, workers=busy)[busy[0]]
    os.kill(killed, signal.SIGKILL)
    bot.settle()
    [finished] = bot.events.of(TrainerFinished)
    assert not finished.ok
    assert finished.detail == f"Dask worker {busy[0]} died mid-fit (tried on 1 worker(s))"
    eth = records(bot)["ETH/USDT"]
    assert eth.state is SymbolState.RETRY_WAIT and eth.attempts == 1
    assert eth.next_attempt_at == pytest.approx(bot.clock.now() + 600, abs=1)
    bot.run(600, step=300)  # after the backoff: the other (or the restarted) worker trains it
    assert len(bot.events.of(TrainerStarted)) == 2
    assert records(bot)["ETH/USDT"].state is SymbolState.ACTIVE
    assert killed not in owner.worker_pids()


def test_an_unreachable_scheduler_is_one_line_and_coverage_retries(
    bots: list[Bot], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    address = f"tcp://127.0.0.1:{closed_port()}"
    pool = DaskTrainingPool(address, connect_timeout_s=0.2)
    bot = Bot(tmp_path, ["ETH/USDT"], pool=pool)
    bots.append(bot)
    bot.start()
    [finished] = bot.events.of(TrainerFinished)
    assert finished.detail.startswith(f"Dask scheduler {address} unreachable: OSError: ")
    assert records(bot)["ETH/USDT"].state is SymbolState.RETRY_WAIT
    bot.run(600, step=300)  # the bot goes on; coverage tries again after its backoff
    assert [f.ok for f in bot.events.of(TrainerFinished)] == [False, False]
    assert records(bot)["ETH/USDT"].attempts == 2
    pool_lines = [r for r in caplog.records if r.name == "tradeactors.training.dask"]
    assert len(pool_lines) == 1  # one line per outage, not one per attempt
    assert pool_lines[0].getMessage().startswith(f"Dask scheduler {address} unreachable: ")
    assert "coverage retries them on its schedule" in pool_lines[0].getMessage()


# --- the pool on its own -----------------------------------------------------------------


def _pretend_sklearn(version: str | None) -> None:
    """Runs on the workers: their version check reports another scikit-learn (None: undo)."""
    import models.dask_pool as dask_pool

    real = getattr(dask_pool, "_real_worker_versions", dask_pool.worker_versions)
    dask_pool._real_worker_versions = real  # type: ignore[attr-defined]
    if version is None:
        dask_pool.worker_versions = real
    else:
        dask_pool.worker_versions = lambda: {**real(), "scikit-learn": version}


def test_a_worker_with_another_scikit_learn_is_refused(tmp_path: Path, scheduler: str) -> None:
    pool = DaskTrainingPool(scheduler)
    candles = random_walk_candles(3000, seed=8, momentum=0.3)
    try:
        assert pool.submit(make_job(tmp_path, candles)).result(timeout=60).symbol == "A/USDT"
        pool.client.run(_pretend_sklearn, "0.0.1")
        try:
            refused = pool.submit(make_job(tmp_path, candles)).exception(timeout=60)
        finally:
            pool.client.run(_pretend_sklearn, None)
        assert isinstance(refused, TrainingError)
        bot_version = worker_versions()["scikit-learn"]
        assert str(refused).startswith("A/USDT: refused by Dask worker tcp://127.0.0.1:")
        assert str(refused).endswith(
            f": it has scikit-learn 0.0.1 (the bot: {bot_version}); "
            "a model pickled there may not load here"
        )
        assert pool.wait_idle(timeout=5) and pool.in_flight() == 0
    finally:
        pool.shutdown()


def test_fits_past_the_deadline_fail_and_fits_beyond_the_cap_wait(
    tmp_path: Path, scheduler: str
) -> None:
    # About 1.4 s per fit on one core of this machine: far past the 0.2 s deadline.
    candles = random_walk_candles(10_000, seed=8, momentum=0.3)
    slow = msgspec.structs.replace(SMALL, max_iter=400)
    pool = DaskTrainingPool(scheduler, fit_deadline_s=0.2, max_in_flight=1)
    try:
        late = pool.submit(make_job(tmp_path, candles, slow))
        waiting = pool.submit(make_job(tmp_path, candles, slow))
        assert pool.in_flight() == 2
        until(lambda: pool.client is not None and any(pool.client.processing().values()), "a fit")
        # One fit handed to the scheduler; the other waits in the pool.
        assert pool.client.run_on_scheduler(_fit_tasks) == 1
        for future in (late, waiting):
            error = future.exception(timeout=30)
            assert isinstance(error, TrainingError)
            assert str(error).startswith(
                "A/USDT: fit exceeded its 0.2 s deadline on Dask scheduler tcp://127.0.0.1:"
            )
        assert pool.wait_idle(timeout=5)
        # Dask cannot stop a running function: the abandoned fits run to their end (then the
        # shared cluster closes at once instead of waiting for them).
        until(lambda: not any(pool.client.run(_executing).values()), "abandoned fits ended")
    finally:
        pool.shutdown()


def _executing(dask_worker: Any) -> int:
    return int(dask_worker.state.executing_count)


def _fit_tasks(dask_scheduler: Any) -> int:
    return sum(1 for key in dask_scheduler.tasks if str(key).startswith("fit-"))


def test_simulate_trains_on_the_dask_cluster(tmp_path: Path, scheduler: str) -> None:
    import supervisor

    settings = tmp_path / "settings.yaml"
    settings.write_text(
        f"training: {{window_days: 4, max_iter: 30, dask: {{scheduler: '{scheduler}'}}}}\n"
        # the transport is under test, not the edge: every model is promoted
        "promotion: {min_net_return_pct: -100, min_auc: 0}\n"
    )
    out = tmp_path / "out"
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # simulate sets up its own log files
    try:
        code = supervisor.main(
            [
                *("simulate", "--days", "0.01", "--symbols", "1", "--settings", str(settings)),
                *("--out", str(out), "--training-backend", "dask"),
            ]
        )
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    assert code == 0
    summary = msgspec.json.decode((out / "summary.json").read_bytes())
    assert summary["training"]["pool"] == "dask"
    assert summary["symbols"]["BTC/USDT"]["final_state"] == "ACTIVE"
    assert summary["invariant_violations"] == []
    log_text = (out / "simulation.log").read_text()
    assert f"Dask scheduler {scheduler} connected: 2 workers" in log_text


def test_the_settings_choose_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.builders import build_training_pool
    from config.settings import TrainingSettings
    from models.pool import TrainingPool

    local = build_training_pool(TrainingSettings(workers=1))
    assert isinstance(local, TrainingPool)
    local.shutdown()
    dask = DaskSettings(scheduler=f"tcp://127.0.0.1:{closed_port()}", connect_timeout_s=0.1)
    remote = build_training_pool(TrainingSettings(backend="dask", dask=dask))
    assert isinstance(remote, DaskTrainingPool) and remote.scheduler == dask.scheduler
    remote.shutdown()
    monkeypatch.setitem(sys.modules, "models.dask_pool", None)  # the extra not installed
    with pytest.raises(SettingsError, match=r"dask needs the dask extra \(pip install"):
        build_training_pool(TrainingSettings(backend="dask"))
