from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import msgspec
import numpy as np
import pytest

from models import artifacts
from models.synthetic import random_walk_candles
from models.training import TrainingError, TrainJob, TrainParams, TrainResult

SMALL = TrainParams(
    max_iter=10, horizon_bars=2, fee_rate=0.0, slippage_bps=0.0, label_margin=0.0, min_rows=500
)


@pytest.fixture(scope="module")
def candles() -> np.ndarray:
    return random_walk_candles(3000, seed=8, momentum=0.3)


def make_job(tmp_path: Path, candles: np.ndarray, params: TrainParams = SMALL, symbol="A/USDT"):
    staging = artifacts.new_staging_dir(tmp_path)
    return TrainJob(symbol, "1m", candles, str(staging), params)


def test_thread_pool_runs_jobs(tmp_path: Path, candles: np.ndarray) -> None:
    from models.pool import TrainingPool

    pool = TrainingPool(workers=1, kind="thread")
    try:
        futures = [pool.submit(make_job(tmp_path, candles, symbol=f"S{i}/USDT")) for i in range(3)]
        assert 1 <= pool.in_flight() <= 3
        assert pool.wait_idle(timeout=30)
        assert pool.in_flight() == 0
        results = [f.result() for f in futures]
        assert [r.symbol for r in results] == ["S0/USDT", "S1/USDT", "S2/USDT"]
        for r in results:
            assert artifacts.publish(tmp_path, r.staging_dir).symbols == [r.symbol]
        assert len(artifacts.list_versions(tmp_path)) == 3
        assert pool.worker_pids() == []
    finally:
        pool.shutdown()


def test_thread_pool_reports_training_errors(tmp_path: Path, candles: np.ndarray) -> None:
    from models.pool import TrainingPool

    flat = candles.copy()
    flat[:, 1:5] = 1.0
    pool = TrainingPool(kind="thread")
    try:
        future = pool.submit(make_job(tmp_path, flat, symbol="USDC/USDT"))
        with pytest.raises(TrainingError, match="USDC/USDT: labels have a single class"):
            future.result(timeout=30)
        assert pool.wait_idle(timeout=5)
    finally:
        pool.shutdown()


def test_wait_idle_times_out_and_shutdown_cancels(tmp_path: Path, candles: np.ndarray) -> None:
    from models.pool import TrainingPool

    pool = TrainingPool(kind="thread")
    gate = threading.Event()
    blocker: Future[None] = pool._executor.submit(gate.wait)  # occupy the only worker
    try:
        queued = pool.submit(make_job(tmp_path, candles))
        assert pool.in_flight() == 1
        assert pool.wait_idle(timeout=0.05) is False
    finally:
        gate.set()
    blocker.result(timeout=5)
    assert pool.wait_idle(timeout=30)
    assert isinstance(queued.result(), TrainResult)

    gate.clear()
    blocker = pool._executor.submit(gate.wait)
    pending = pool.submit(make_job(tmp_path, candles))
    threading.Timer(0.2, gate.set).start()
    pool.shutdown(cancel_pending=True)
    assert pending.cancelled()
    assert pool.in_flight() == 0
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(make_job(tmp_path, candles))


def test_bad_arguments() -> None:
    from models.pool import TrainingPool

    with pytest.raises(ValueError, match="workers"):
        TrainingPool(workers=0, kind="thread")
    with pytest.raises(ValueError, match="kind"):
        TrainingPool(kind="fiber")  # type: ignore[arg-type]


def _worker_probe(_: object = None) -> tuple[int, int, str | None, int]:
    from threadpoolctl import threadpool_info

    limits = {info["num_threads"] for info in threadpool_info()}
    return os.getpid(), os.nice(0), os.environ.get("OMP_NUM_THREADS"), max(limits, default=1)


@pytest.mark.slow
def test_process_pool_job_and_recovery_after_killed_worker(
    tmp_path: Path, candles: np.ndarray
) -> None:
    from models.pool import TrainingPool

    started = time.monotonic()
    pool = TrainingPool(workers=1, kind="process", nice=5)
    try:
        # One real job completes in a worker process.
        result = pool.submit(make_job(tmp_path, candles)).result(timeout=60)
        assert result.symbol == "A/USDT"
        assert artifacts.publish(tmp_path, result.staging_dir).version == "v000001"
        assert artifacts.load_version(tmp_path / "v000001").version == "v000001"

        # The worker runs niced, with one OpenMP/BLAS thread.
        pid, niceness, omp, max_threads = pool._executor.submit(_worker_probe).result(timeout=30)
        assert pid != os.getpid()
        assert niceness >= os.nice(0) + 5
        assert omp == "1"
        assert max_threads == 1

        # A long fit, killed mid-way: the future raises, the pool recovers.
        long_params = msgspec.structs.replace(SMALL, max_iter=100_000, min_rows=2000)
        doomed = pool.submit(make_job(tmp_path, random_walk_candles(20_000, seed=1), long_params))
        # Killed before or during the fit, the job's future must raise: no need to wait.
        assert not doomed.done()
        pids = pool.worker_pids()
        assert pids == [pid]
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            doomed.result(timeout=30)
        assert pool.wait_idle(timeout=10)

        again = pool.submit(make_job(tmp_path, candles, symbol="B/USDT")).result(timeout=60)
        assert again.symbol == "B/USDT"
        new_pids = pool.worker_pids()
        assert len(new_pids) == 1 and new_pids != [pid]

        # Job errors cross the process boundary intact.
        flat = candles.copy()
        flat[:, 1:5] = 1.0
        with pytest.raises(TrainingError, match="USDC/USDT: labels have a single class"):
            pool.submit(make_job(tmp_path, flat, symbol="USDC/USDT")).result(timeout=60)

        # An idle worker dying costs at most the next job (it may be queued before
        # the death is noticed); the one after that runs on a fresh worker.
        os.kill(new_pids[0], signal.SIGKILL)
        outcomes = []
        for _ in range(2):
            try:
                outcomes.append(pool.submit(make_job(tmp_path, candles)).result(timeout=60))
                break
            except BrokenProcessPool as e:
                outcomes.append(e)
        assert isinstance(outcomes[-1], TrainResult), outcomes
    finally:
        pool.shutdown()
    # ~2.5 s on an idle 2-core machine; the bound only catches pathologies.
    assert time.monotonic() - started < 30
