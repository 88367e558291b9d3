"""`simulate()`: the whole bot on a virtual clock over the synthetic market, with a summary.

`run_bot` is the run itself on any market, which `simulation.backtest` shares.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Literal

import msgspec

from actors.base import Runtime
from actors.clock import Mailbox, VirtualClock
from app.builders import build_paper_exchange, build_training_pool
from app.supervision import Supervisor
from app.system import System
from config.settings import Settings
from exchange.port import ExchangePort
from exchange.synthetic import SyntheticMarket, synthetic_specs
from models.pool import TrainingBackend
from simulation.monitor import InvariantMonitor
from simulation.pool import DeterministicPool
from simulation.runner import SIM_START, SimRun, run
from simulation.summary import Summary, summarize

TRAINING_NOTE = (
    "Trains as settings.training says (window, iterations) unless --train-days shortens the "
    "window for speed. Fits run while virtual time stands still, so they cost wall time only. "
    "Thread pool by default: nothing trades during a fit here, so a worker process would buy "
    "no latency isolation; results are handed back in symbol order with either pool."
)


def simulate(
    settings: Settings,
    *,
    days: float,
    symbols: int | None = None,
    seed: int | None = None,
    pool_kind: Literal["thread", "process"] = "thread",
    workers: int | None = None,
    clock: VirtualClock | None = None,
    on_step: Callable[[float, float], None] | None = None,
) -> Summary:
    """Run the whole bot for `days` of virtual time on `symbols` synthetic symbols.

    Paper exchange over the synthetic market whatever `exchange.kind` says; model
    files and candles in a temporary folder (nothing on disk is reused or kept).
    """
    seed = settings.exchange.seed if seed is None else seed
    specs = synthetic_specs(symbols)
    workers = workers or os.cpu_count() or 1
    vclock = clock or VirtualClock(start=SIM_START)
    replace = msgspec.structs.replace
    with tempfile.TemporaryDirectory(prefix="tradeactors-sim-") as data_dir:
        settings = replace(
            settings,
            data_dir=data_dir,
            exchange=replace(settings.exchange, seed=seed),
            universe=replace(settings.universe, top_n=max(settings.universe.top_n, len(specs))),
        )
        market = SyntheticMarket(anchor_ms=int(vclock.now() * 1000), seed=seed, specs=specs)
        dask = settings.training.backend == "dask"  # else pool_kind says which local pool
        result = run_bot(
            settings,
            vclock,
            build_paper_exchange(market, vclock, settings.exchange),
            seconds=days * 86_400,
            listed_at={s.symbol: market.listed_ms(s.symbol) / 1000 for s in specs},
            pool_kind=pool_kind,
            workers=workers,
            inner=build_training_pool(settings.training, workers=workers) if dask else None,
            on_step=on_step,
        )
    return summarize(
        result,
        settings,
        seed=seed,
        pool="dask" if dask else pool_kind,
        workers=workers,
        training_note=TRAINING_NOTE,
    )


def run_bot(
    settings: Settings,
    clock: VirtualClock,
    exchange: ExchangePort,
    *,
    seconds: float,
    listed_at: Mapping[str, float],
    pool_kind: Literal["thread", "process"],
    workers: int,
    inner: TrainingBackend | None = None,
    on_step: Callable[[float, float], None] | None = None,
    subscribers: Mapping[str, Mailbox] | None = None,
) -> SimRun:
    """The whole bot on `clock` for `seconds`: what `simulate` and `backtest` both run.

    The `System` of a live run (its `Supervisor` restarting dead actors) trading on
    `exchange`, with the simulation's deterministic pool and the invariant monitor
    (`listed_at`: when each symbol's history starts, epoch seconds); fits run in
    `inner` if given (e.g. a Dask cluster), else in a local pool of `pool_kind`;
    `subscribers` also get every event.
    """
    # the System's runtime, made here so that the pool can share it: the pool hands
    # fit results back when the scheduler says, so it must know the trainers' count
    runtime = Runtime()
    pool = DeterministicPool(runtime, workers=workers, kind=pool_kind, inner=inner)
    monitor = InvariantMonitor(
        coverage_interval_s=settings.coverage.interval_s,
        min_history_days=settings.coverage.min_history_days,
        listed_at=listed_at,
        retry_after_s=settings.promotion.retry_after_days * 86_400,
    )
    system = System(settings, clock, exchange, pool, runtime=runtime)
    for name, subscriber in (subscribers or {}).items():
        system.events.subscribe(name, subscriber)
    return run(
        system,
        clock,
        pool,
        seconds,
        monitor=monitor,
        sample_s=settings.heartbeat_s,
        supervisor=Supervisor(system).handle,
        on_step=on_step,
    )
