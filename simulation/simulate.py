"""`simulate()`: the whole bot on a virtual clock over the synthetic market, with a summary.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Literal

import msgspec

from actors.clock import VirtualClock
from app.builders import build_training_pool
from app.supervision import Supervisor
from app.system import System
from config.settings import Settings
from exchange.paper import PaperExchange
from exchange.synthetic import SyntheticMarket, synthetic_specs
from simulation import runner as simulation
from simulation.report import Summary


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
    vclock = clock or VirtualClock(start=simulation.SIM_START)
    replace = msgspec.structs.replace
    with tempfile.TemporaryDirectory(prefix="tradeactors-sim-") as data_dir:
        settings = replace(
            settings,
            data_dir=data_dir,
            exchange=replace(settings.exchange, seed=seed),
            universe=replace(settings.universe, top_n=max(settings.universe.top_n, len(specs))),
        )
        market = SyntheticMarket(anchor_ms=int(vclock.now() * 1000), seed=seed, specs=specs)
        paper = settings.exchange
        exchange = PaperExchange(
            market,
            now_ms=lambda: int(vclock.now() * 1000),
            quote=paper.quote,
            starting_balance=paper.starting_balance,
            fee_rate=paper.fee_rate,
            slippage_bps=paper.slippage_bps,
        )
        dask = settings.training.backend == "dask"  # else pool_kind says which local pool
        inner = build_training_pool(settings.training, workers=workers) if dask else None
        pool = simulation.DeterministicPool(workers=workers, kind=pool_kind, inner=inner)
        monitor = simulation.InvariantMonitor(
            coverage_interval_s=settings.coverage.interval_s,
            min_history_days=settings.coverage.min_history_days,
            listed_at={s.symbol: market.listed_ms(s.symbol) / 1000 for s in specs},
        )
        system = System(settings, vclock, exchange, pool)
        result = simulation.run(
            system,
            vclock,
            pool,
            days * 86_400,
            monitor=monitor,
            sample_s=settings.heartbeat_s,
            supervisor=Supervisor(system).handle,
            on_step=on_step,
        )
    return simulation.summarize(
        result,
        settings,
        seed=seed,
        pool="dask" if dask else pool_kind,
        workers=workers,
        training_note=simulation.TRAINING_NOTE,
    )
