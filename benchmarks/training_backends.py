"""Training backends side by side: the local process pool and a local Dask cluster.

    python benchmarks/training_backends.py [--jobs 50] [--workers 1] [--window-days 14]
                                           [--tick-jobs 8] [--scheduler tcp://host:8786]

For each backend (`TrainingPool(kind="process")`, and `DaskTrainingPool` on a local
cluster bound to 127.0.0.1, or on `--scheduler`), with `--workers` workers:
- start: from creating the pool to the first fit's result (forkserver or cluster start);
- throughput: `--jobs` trainings (the bot's training settings, `--window-days` of 1m
  candles each) queued at once; jobs per minute of wall time;
- overhead per job: 10 jobs one at a time, the median of (submit -> result) minus
  the fit's own time measured on the worker: what the backend adds to a fit
  (pickling the candles, scheduling, for Dask also the model bytes coming back and
  being written to the local staging folder);
- the trader's tick p99 while `--tick-jobs` trainings run in that backend, against
  its idle p99 (the rig of benchmarks/tick_latency.py: a real TraderActor on a
  VirtualClock). Target: within 1.5x, as for the process pool.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common
from tick_latency import Rig, jobs

from models.pool import TrainingBackend, TrainingPool

SEQUENTIAL = 10


def process_pool(workers: int) -> TrainingBackend:
    return TrainingPool(workers=workers, kind="process")


def dask_pool(workers: int, scheduler: str) -> Callable[[int], TrainingBackend]:
    from models.dask_pool import DaskTrainingPool

    return lambda _: DaskTrainingPool(scheduler, workers=workers, max_in_flight=max(2, workers))


def measure(
    name: str, make: Callable[[int], TrainingBackend], workers: int, rig: Rig, args: Any, tmp: Path
) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    pool = make(workers)
    try:
        [first] = [pool.submit(job) for job in jobs(rig, 1, 3, tmp)]
        first.result(timeout=300)
        start_s = time.perf_counter() - started
        for future in [pool.submit(job) for job in jobs(rig, workers, 3, tmp)]:
            future.result(timeout=300)  # every worker warm

        overheads = []
        for job in jobs(rig, SEQUENTIAL, args.window_days, tmp):
            t0 = time.perf_counter()
            result = pool.submit(job).result(timeout=300)
            overheads.append(time.perf_counter() - t0 - result.fit_seconds)

        work = jobs(rig, args.jobs, args.window_days, tmp)
        t0 = time.perf_counter()
        results = [f.result(timeout=3600) for f in [pool.submit(job) for job in work]]
        wall = time.perf_counter() - t0
        fit_s = statistics.median(r.fit_seconds for r in results)

        for job in jobs(rig, args.tick_jobs, args.window_days, tmp):
            pool.submit(job)
        ticks = rig.ticks_while(lambda: pool.in_flight() > 0)
    finally:
        pool.shutdown()
    return {
        "backend": name,
        "start_s": start_s,
        "jobs_per_min": len(results) / wall * 60,
        "fit_s": fit_s,
        "overhead_ms": statistics.median(overheads) * 1e3,
        "ticks": ticks,
        "load": f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}",
        "back_kb": sum(f.stat().st_size for f in Path(results[-1].staging_dir).iterdir()) / 1e3,
    }


def payload_mb(rig: Rig, days: float) -> float:
    """What one Dask fit sends: the candles, params and versions, pickled."""
    import pickle

    from models.dask_pool import FitPayload, worker_versions

    [job] = jobs(rig, 1, days, Path(tempfile.gettempdir()))
    Path(job.staging_dir).rmdir()
    payload = FitPayload(
        job.symbol, job.timeframe, job.candles, job.params, None, 1, worker_versions()
    )
    return len(pickle.dumps(payload)) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50, help="trainings for the throughput")
    parser.add_argument("--workers", type=int, default=1, help="workers of each backend")
    parser.add_argument("--window-days", type=float, default=14, help="history per training")
    parser.add_argument("--tick-jobs", type=int, default=8, help="trainings under the ticks")
    parser.add_argument("--idle-ticks", type=int, default=3000)
    parser.add_argument("--scheduler", default="", help="Dask scheduler (default: local)")
    args = parser.parse_args()
    cap = _common.thread_cap()
    backends: list[tuple[str, Callable[[int], TrainingBackend]]] = [
        ("process pool", process_pool),
        (f"dask, {args.scheduler or 'local cluster'}", dask_pool(args.workers, args.scheduler)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(["BTC/USDT"], Path(tmp))
        try:
            for _ in range(200):  # warm caches (market days, first predict)
                rig.tick()
            idle = [rig.tick() for _ in range(args.idle_ticks)]
            measured = [measure(n, m, args.workers, rig, args, Path(tmp)) for n, m in backends]
            idle += [rig.tick() for _ in range(args.idle_ticks)]
            sizes = {days: payload_mb(rig, days) for days in (args.window_days, 90)}
        finally:
            rig.stop()
    cap.restore_original_limits()
    idle_p99 = _common.percentiles_ms(idle)[1]
    rows = []
    for m in measured:
        p99 = _common.percentiles_ms(m["ticks"])[1]
        m["tick_p99_ratio"] = p99 / idle_p99
        rows.append(
            (
                m["backend"],
                m["start_s"],
                m["jobs_per_min"],
                m["fit_s"],
                m["overhead_ms"],
                p99,
                m["tick_p99_ratio"],
                m["load"],
            )
        )
    print(
        "The machine's load average (other programs included) is in the last column: figures "
        "from a loaded machine are slower and noisier than its cores alone would give."
    )
    print(
        f"{args.jobs} trainings of {args.window_days:g} days of 1m candles, {args.workers} "
        f"worker(s) per backend; overhead: median of {SEQUENTIAL} single jobs; trader tick "
        f"p99 while {args.tick_jobs} trainings run, idle p99 {idle_p99:.2f} ms"
    )
    print(
        _common.table(
            [
                "backend",
                "start s",
                "jobs/min",
                "fit s (median)",
                "overhead ms/job",
                "tick p99 ms",
                "p99 / idle p99",
                "load average",
            ],
            rows,
        )
    )
    print(
        "per Dask fit over the network: "
        + ", ".join(f"{days:g} days of candles {mb:.2f} MB" for days, mb in sizes.items())
        + f" to the worker; model file + manifest {measured[-1]['back_kb']:.0f} kB back"
    )
    _common.result(
        "training_backends",
        idle_p99_ms=idle_p99,
        **{
            f"{key}_{'dask' if 'dask' in m['backend'] else 'processes'}": m[key]
            for m in measured
            for key in ("start_s", "jobs_per_min", "fit_s", "overhead_ms", "tick_p99_ratio")
        },
    )


if __name__ == "__main__":
    main()
