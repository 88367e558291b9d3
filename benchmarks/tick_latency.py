"""2. Trader tick latency: idle, with trainings in the worker pool, with a fit in-process.

    python benchmarks/tick_latency.py [--cycles 4] [--jobs 4] [--window-days 14]

A real TraderActor and its MarketDataActor (paper exchange over the synthetic
market, a real model per symbol) on a VirtualClock; one tick = `clock.advance(60)`
and then until both are quiet: the TradeTick, the market-data actor fetching the
candle (`FetchCandles`), and the trader's decision on `CandlesClosed` (build the
feature row, ask the model, decide, maybe place a paper order). Timed in wall
time.

The target (p99 with the worker pool busy <= 1.5x the idle p99) is measured in
`--cycles` cycles of four phases, one after the other, so that the machine's other
load (it drifts over seconds) falls on every condition alike:
- idle: `--idle-ticks` ticks, nothing else running;
- pool: `--jobs` trainings queued in the bot's process TrainingPool (one
  forkserver worker at one OpenMP thread, nice 10, kept across cycles as the bot
  keeps it), ticking until they are done;
- idle again;
- spin: a process of its own spinning on a core at nice 10 for as long as the
  pool phase took (at most `--spin-s`): the same busy core without the pool's threads, queues and
  pickling in the bot's process. Pool close to spin means the cost is the busy
  core, not the pool's machinery.
Each cycle's ratio is its busy phase's p99 over the p99 of its two idle phases;
the summary gives the ratio of all ticks of a condition over all idle ticks, and
the median and range of the per-cycle ratios. Then, once each (information):
two workers (both cores busy) and the same fits in a thread of this process
(what the design avoids). Process-wide BLAS cap at one thread, as
`python supervisor.py` runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
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


def under_pool(
    rig: Rig, pool: TrainingPool, count: int, days: float, models_dir: Path
) -> list[float]:
    work = jobs(rig, count, days, models_dir)
    for job in work:
        pool.submit(job)
    return rig.ticks_while(lambda: pool.in_flight() > 0)


def warm_pool(rig: Rig, workers: int, models_dir: Path) -> TrainingPool:
    """A process pool with its forkserver and workers started (not part of any phase)."""
    pool = TrainingPool(workers=workers, kind="process")
    for future in [pool.submit(job) for job in jobs(rig, workers, 3, models_dir)]:
        future.result()
    return pool


def under_spin(rig: Rig, seconds: float) -> list[float]:
    """Ticks while another process spins on a core at nice 10 for `seconds`."""
    code = (
        "import os, time\n"
        "os.nice(10)\n"
        f"end = time.monotonic() + {seconds!r}\n"
        "while time.monotonic() < end: pass\n"
    )
    spinner = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(0.05)  # the interpreter started and spinning
    samples = rig.ticks_while(lambda: spinner.poll() is None)
    spinner.wait()
    return samples


def under_thread(rig: Rig, count: int, days: float, models_dir: Path) -> list[float]:
    work = jobs(rig, count, days, models_dir)
    fitter = threading.Thread(target=lambda: [run_training(job) for job in work])
    fitter.start()
    samples = rig.ticks_while(fitter.is_alive)
    fitter.join()
    return samples


def p99(samples: list[float]) -> float:
    return _common.percentiles_ms(samples)[1]


def cycle_ratios(phases: list[tuple[str, list[float]]], kind: str) -> list[float]:
    """Each `kind` phase's p99 over the p99 of the idle phases on either side of it."""
    return [
        p99(samples) / p99(phases[i - 1][1] + phases[i + 1][1])
        for i, (name, samples) in enumerate(phases)
        if name == kind
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1, help="active symbols per tick")
    parser.add_argument("--jobs", type=int, default=4, help="trainings per pool phase")
    parser.add_argument("--window-days", type=float, default=14, help="history per training")
    parser.add_argument("--idle-ticks", type=int, default=2000, help="ticks per idle phase")
    parser.add_argument("--cycles", type=int, default=4, help="idle/pool/idle/spin cycles")
    parser.add_argument("--spin-s", type=float, default=10.0, help="longest spin phase")
    args = parser.parse_args()
    cap = _common.thread_cap()
    # in order: idle, pool, idle, spin, idle, pool, ...; every busy phase between two idle ones
    phases: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        models_dir = Path(tmp)
        rig = Rig(SYMBOLS[: args.symbols], models_dir)
        pool = warm_pool(rig, 1, models_dir)
        try:
            for _ in range(200):  # warm caches (market days, first predict)
                rig.tick()
            phases.append(("idle", [rig.tick() for _ in range(args.idle_ticks)]))
            for _ in range(args.cycles):
                start = time.perf_counter()
                phases.append(
                    ("pool", under_pool(rig, pool, args.jobs, args.window_days, models_dir))
                )
                took = time.perf_counter() - start
                phases.append(("idle", [rig.tick() for _ in range(args.idle_ticks)]))
                phases.append(("spin", under_spin(rig, min(took, args.spin_s))))
                phases.append(("idle", [rig.tick() for _ in range(args.idle_ticks)]))
            pool.shutdown()
            two = warm_pool(rig, 2, models_dir)
            try:
                two_workers = under_pool(rig, two, args.jobs, args.window_days, models_dir)
            finally:
                two.shutdown()
            idle_two = [rig.tick() for _ in range(args.idle_ticks)]
            in_thread = under_thread(rig, 4, args.window_days, models_dir)
            idle_end = [rig.tick() for _ in range(args.idle_ticks)]
        finally:
            pool.shutdown()
            rig.stop()
    cap.restore_original_limits()

    def of(kind: str) -> list[float]:
        return [t for name, samples in phases if name == kind for t in samples]

    idle_all = of("idle")
    idle_p99 = p99(idle_all)
    rows = []

    def row(name: str, samples: list[float], reference: float, spread: list[float]) -> float:
        p50, p99_ms = _common.percentiles_ms(samples)
        ratio = p99_ms / reference
        text = f"{np.median(spread):.2f} ({min(spread):.2f}-{max(spread):.2f})" if spread else "-"
        rows.append((name, len(samples), p50, p99_ms, ratio, text))
        return ratio

    pool_cycles, spin_cycles = cycle_ratios(phases, "pool"), cycle_ratios(phases, "spin")
    row(f"idle, {args.cycles * 2 + 1} phases", idle_all, idle_p99, [])
    pool_ratio = row(
        f"{args.jobs} trainings, process pool, 1 worker", of("pool"), idle_p99, pool_cycles
    )
    spin_ratio = row("a process spinning at nice 10", of("spin"), idle_p99, spin_cycles)
    # the information-only conditions, against the idle phase after each
    two_ratio = row(
        f"{args.jobs} trainings, process pool, 2 workers", two_workers, p99(idle_two), []
    )
    thread_ratio = row("4 fits in a thread of this process", in_thread, p99(idle_end), [])
    print(
        f"trader tick = advance(60) on a VirtualClock until the trader and market data are "
        f"quiet; {args.symbols} active symbol(s); trainings on {args.window_days:g} days of 1m "
        f"candles; {args.cycles} cycles of idle / pool / idle / spin, {args.idle_ticks} ticks "
        "per idle phase"
    )
    print(
        _common.table(
            ["condition", "ticks", "p50 ms", "p99 ms", "p99 / idle p99", "per cycle (range)"],
            rows,
        )
    )
    _common.result(
        "tick_latency",
        idle_p50_ms=rows[0][2],
        idle_p99_ms=idle_p99,
        pool_1_worker_ratio=pool_ratio,
        pool_1_worker_cycle_ratios=pool_cycles,
        spin_ratio=spin_ratio,
        spin_cycle_ratios=spin_cycles,
        pool_2_workers_ratio=two_ratio,
        thread_fit_ratio=thread_ratio,
    )


if __name__ == "__main__":
    main()
