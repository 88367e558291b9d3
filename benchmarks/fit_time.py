"""Training cost and prediction latency of the default model on synthetic 1m candles.

Run from the repository root:  python benchmarks/fit_time.py [--days 7 30 90]

Per window size: usable rows, whole ``run_training`` job (features, 3 walk-forward
folds, final fit, staging write) in this process at one OpenMP thread, the same
job through a process ``TrainingPool`` (worker already warm), model file size,
``load_version`` time, and ``latest_features`` / ``prob_up`` latency for one row.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import artifacts
from models.features import LOOKBACK_BARS, latest_features
from models.pool import TrainingPool
from models.synthetic import random_walk_candles
from models.training import TrainJob, TrainParams, run_training

MINUTES_PER_DAY = 1440


def percentiles_us(fn: object, n: int) -> tuple[float, float]:
    assert callable(fn)
    times = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    p50, p99 = np.percentile(times * 1e6, [50, 99])
    return float(p50), float(p99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[7, 30, 90])
    parser.add_argument("--calls", type=int, default=2000, help="prediction calls to time")
    args = parser.parse_args()

    params = TrainParams()
    header = (
        f"{'days':>4} {'rows':>7} {'job s':>6} {'pool s':>6} {'file KB':>8} {'load ms':>7} "
        f"{'feat p50':>8} {'feat p99':>8} {'prob p50':>8} {'prob p99':>8}"
    )
    print(f"TrainParams: {params}")
    print("latency columns in microseconds; job = whole run_training call")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        models_dir = Path(tmp)
        pool = TrainingPool(workers=1, kind="process")
        try:
            # Start the forkserver and the worker once so the pool column is warm.
            warmup = random_walk_candles(3 * MINUTES_PER_DAY, seed=99, momentum=0.1)
            staging = artifacts.new_staging_dir(models_dir)
            pool.submit(TrainJob("WARM/USDT", "1m", warmup, str(staging), params)).result()

            for days in args.days:
                candles = random_walk_candles(days * MINUTES_PER_DAY, seed=days, momentum=0.1)
                staging = artifacts.new_staging_dir(models_dir)
                result = run_training(TrainJob("SYN/USDT", "1m", candles, str(staging), params))

                staging2 = artifacts.new_staging_dir(models_dir)
                start = time.perf_counter()
                pool.submit(TrainJob("SYN/USDT", "1m", candles, str(staging2), params)).result()
                pool_s = time.perf_counter() - start

                manifest = artifacts.publish(models_dir, staging)
                version_dir = models_dir / manifest.version
                size_kb = (version_dir / manifest.model_file).stat().st_size / 1024
                start = time.perf_counter()
                model = artifacts.load_version(version_dir)
                load_ms = (time.perf_counter() - start) * 1e3

                tail = candles[-LOOKBACK_BARS:]
                features = latest_features(tail)
                model.prob_up(features)  # first call caps this thread's OpenMP
                feat = percentiles_us(lambda tail=tail: latest_features(tail), args.calls)
                prob = percentiles_us(
                    lambda f=features, m=model: m.prob_up(f),
                    args.calls,
                )
                print(
                    f"{days:>4} {result.rows:>7} {result.fit_seconds:>6.2f} {pool_s:>6.2f} "
                    f"{size_kb:>8.0f} {load_ms:>7.1f} {feat[0]:>8.0f} {feat[1]:>8.0f} "
                    f"{prob[0]:>8.0f} {prob[1]:>8.0f}"
                )
        finally:
            pool.shutdown()


if __name__ == "__main__":
    main()
