"""2. Trader tick latency: idle, with trainings in the worker pool, with a fit in-process.

    python benchmarks/tick_latency.py [--symbols 1] [--jobs 8] [--window-days 14]

A real TraderActor and its MarketDataActor (paper exchange over the synthetic
market, a real model per symbol) on a VirtualClock; one tick = `clock.advance(60)`
and then until both are quiet: the TradeTick, the market-data actor fetching the
candle (`FetchCandles`), and the trader's decision on `CandlesClosed` (build the
feature row, ask the model, decide, maybe place a paper order). Timed in wall
time, under:
- idle: nothing else runs;
- pool: `--jobs` trainings queued in a process TrainingPool (forkserver workers at
  one OpenMP thread, nice 10), with the bot's default single worker, and again
  with two workers (both cores busy);
- thread: the same fits run in a thread of this process (what the design avoids).
Process-wide BLAS cap at one thread, as `python supervisor.py` runs. The idle
baseline pools an idle run before and one after the loaded runs (the machine's
other load drifts). Target: p99 with the worker pool busy <= 1.5x the idle p99.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common
import numpy as np
import pykka

from actors.base import Runtime, Topic
from actors.clock import VirtualClock
from app.builders import build_paper_exchange
from config.settings import TradingSettings
from exchange.synthetic import SyntheticMarket
from models import artifacts
from models.pool import TrainingPool
from models.training import TrainJob, TrainParams, run_training
from storage.ledger import MemoryLedger
from tests.harness import make_tradable, start_trader

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT", "LINK/USDT"]
DAY_MS = 86_400_000
PARAMS = TrainParams()  # the bot's settings defaults


class _Sink:
    def tell(self, message: Any) -> None:
        pass


def history(market: SyntheticMarket, symbol: str, days: float) -> np.ndarray:
    end = int(_common.T0 * 1000)
    return market.ohlcv(symbol, "1m", end - int(days * DAY_MS), end)


class Rig:
    """A trader with models for `symbols`, ticked by hand."""

    def __init__(self, symbols: list[str], models_dir: Path) -> None:
        self.clock = VirtualClock(start=_common.T0, stall_timeout_s=60)
        self.market = SyntheticMarket(anchor_ms=int(_common.T0 * 1000))
        exchange = build_paper_exchange(self.market, self.clock)
        models = {}
        for symbol in symbols:
            staging = artifacts.new_staging_dir(models_dir)
            run_training(
                TrainJob(symbol, "1m", history(self.market, symbol, 14), str(staging), PARAMS)
            )
            manifest = artifacts.publish(models_dir, staging)
            models[symbol] = artifacts.load_version(models_dir / manifest.version)
        self.runtime = Runtime()
        self.ref = start_trader(
            clock=self.clock,
            exchange=exchange,
            ledger=MemoryLedger(),
            trading=TradingSettings(),
            store=_Sink(),
            coverage=_Sink(),
            events=Topic(),
            runtime=self.runtime,
            heartbeat_s=10**9,
            health_s=10**9,
        )
        make_tradable(self.ref, models)
        self.runtime.wait_quiet()

    def tick(self) -> float:
        start = time.perf_counter()
        self.clock.advance(60)
        self.runtime.wait_quiet()
        return time.perf_counter() - start

    def ticks_while(self, busy: Callable[[], bool], at_least: int = 200) -> list[float]:
        samples = []
        while busy() or len(samples) < at_least:
            samples.append(self.tick())
        return samples

    def stop(self) -> None:
        pykka.ActorRegistry.stop_all()  # the trader and its market-data actor


def jobs(rig: Rig, count: int, days: float, models_dir: Path) -> list[TrainJob]:
    return [
        TrainJob(
            SYMBOLS[i % len(SYMBOLS)],
            "1m",
            history(rig.market, SYMBOLS[i % len(SYMBOLS)], days),
            str(artifacts.new_staging_dir(models_dir)),
            PARAMS,
        )
        for i in range(count)
    ]


def under_pool(rig: Rig, workers: int, count: int, days: float, models_dir: Path) -> list[float]:
    pool = TrainingPool(workers=workers, kind="process")
    try:
        warm = jobs(rig, workers, 3, models_dir)  # start the forkserver and the workers first
        for future in [pool.submit(job) for job in warm]:
            future.result()
        work = jobs(rig, count, days, models_dir)
        for job in work:
            pool.submit(job)
        return rig.ticks_while(lambda: pool.in_flight() > 0)
    finally:
        pool.shutdown()


def under_thread(rig: Rig, count: int, days: float, models_dir: Path) -> list[float]:
    work = jobs(rig, count, days, models_dir)
    fitter = threading.Thread(target=lambda: [run_training(job) for job in work])
    fitter.start()
    samples = rig.ticks_while(fitter.is_alive)
    fitter.join()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1, help="active symbols per tick")
    parser.add_argument("--jobs", type=int, default=8, help="trainings in the pool")
    parser.add_argument("--window-days", type=float, default=14, help="history per training")
    parser.add_argument("--idle-ticks", type=int, default=3000)
    args = parser.parse_args()
    cap = _common.thread_cap()
    with tempfile.TemporaryDirectory() as tmp:
        models_dir = Path(tmp)
        rig = Rig(SYMBOLS[: args.symbols], models_dir)
        try:
            for _ in range(200):  # warm caches (market days, first predict)
                rig.tick()
            runs: list[tuple[str, list[float]]] = [
                ("idle", [rig.tick() for _ in range(args.idle_ticks)]),
                (
                    f"{args.jobs} trainings, process pool, 1 worker",
                    under_pool(rig, 1, args.jobs, args.window_days, models_dir),
                ),
                (
                    f"{args.jobs} trainings, process pool, 2 workers",
                    under_pool(rig, 2, args.jobs, args.window_days, models_dir),
                ),
                (
                    "4 fits in a thread of this process",
                    under_thread(rig, 4, args.window_days, models_dir),
                ),
                ("idle again", [rig.tick() for _ in range(args.idle_ticks)]),
            ]
        finally:
            rig.stop()
    cap.restore_original_limits()
    # The baseline is both idle runs together: what else runs on the machine drifts
    # over a minute, and the loaded runs sit between the two.
    idle = runs[0][1] + runs[-1][1]
    idle_p99 = _common.percentiles_ms(idle)[1]
    rows = []
    for name, samples in [("idle, before and after", idle), *runs]:
        p50, p99 = _common.percentiles_ms(samples)
        rows.append((name, len(samples), p50, p99, p99 / idle_p99))
    print(
        f"trader tick = advance(60) on a VirtualClock until the trader and market data are "
        f"quiet; "
        f"{args.symbols} active symbol(s); trainings on {args.window_days:g} days of 1m candles"
    )
    print(_common.table(["condition", "ticks", "p50 ms", "p99 ms", "p99 / idle p99"], rows))
    _common.result(
        "tick_latency",
        idle_p50_ms=rows[0][2],
        idle_p99_ms=idle_p99,
        pool_1_worker_ratio=rows[2][4],
        pool_2_workers_ratio=rows[3][4],
        thread_fit_ratio=rows[4][4],
        ratios={row[0]: row[4] for row in rows},
    )


if __name__ == "__main__":
    main()
