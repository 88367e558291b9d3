"""A run turned into its `Summary` (pure): counts, per-symbol outcomes, equity and drawdown.

`simulation.report` writes and shows the summary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from config.settings import Settings
from core.timefmt import format_utc
from policy.lifecycle import DAY_S, SymbolState
from simulation.report import Summary, SymbolSummary, TrainingSummary
from simulation.runner import HOUR_S, SimRun
from storage.ledger import OrderRow


def max_drawdown(values: Iterable[float]) -> tuple[float, float]:
    """Largest fall from a running peak: (fraction of that peak, absolute)."""
    peak = -math.inf
    worst, worst_abs = 0.0, 0.0
    for value in values:
        if not math.isfinite(value):
            continue
        peak = max(peak, value)
        drop = peak - value
        if drop > worst_abs:
            worst_abs = drop
            worst = drop / peak if peak > 0 else 0.0
    return worst, worst_abs


def symbol_pnl(rows: Iterable[OrderRow], last_prices: Mapping[str, float]) -> dict[str, float]:
    """Per symbol: sells - buys - fees, plus what is still held at its last close."""
    cash: dict[str, float] = {}
    held: dict[str, float] = {}
    for row in rows:
        if row.filled <= 0 or row.average_price is None:
            continue
        notional = row.filled * row.average_price
        sign = -1.0 if row.side == "buy" else 1.0
        cash[row.symbol] = cash.get(row.symbol, 0.0) + sign * notional - row.fee_quote
        held[row.symbol] = held.get(row.symbol, 0.0) - sign * row.filled
    return {
        symbol: value + held.get(symbol, 0.0) * last_prices.get(symbol, 0.0)
        for symbol, value in cash.items()
    }


def summarize(
    sim: SimRun,
    settings: Settings,
    *,
    seed: int,
    pool: str,
    workers: int,
    training_note: str,
) -> Summary:
    tally, monitor = sim.tally, sim.monitor
    hours = lambda t: round((t - sim.start) / HOUR_S, 4)  # noqa: E731
    pnl = symbol_pnl(sim.orders, sim.last_prices)
    symbols: dict[str, SymbolSummary] = {}
    for name in sorted(tally.symbols):
        t = tally.symbols[name]
        active = next((at for at, state in t.timeline if state == SymbolState.ACTIVE), None)
        symbols[name] = SymbolSummary(
            final_state=sim.final_states.get(name, "unknown"),
            trainings_started=len(t.trainings),
            trainings_failed=sum(run.ok is False for run in t.trainings),
            became_active_at=None if active is None else format_utc(active, seconds=True),
            orders=t.orders,
            pnl=round(pnl.get(name, 0.0), 6),
            signals=t.signals,
            timeline=[(hours(at), state) for at, state in t.timeline],
            trainings=[
                (hours(r.started_at), None if r.finished_at is None else hours(r.finished_at), r.ok)
                for r in t.trainings
            ],
        )
    sim_seconds = sim.end - sim.start
    drawdown, drawdown_abs = max_drawdown(e for _, e in sim.equity)
    reloads = tally.by_prefix("model_reloads.")
    return Summary(
        start=format_utc(sim.start, seconds=True),
        days=round(sim_seconds / DAY_S, 6),
        seed=seed,
        market_symbols=len(symbols),
        sim_seconds=sim_seconds,
        wall_seconds=round(sim.wall_seconds, 3),
        speedup=round(sim_seconds / sim.wall_seconds, 1) if sim.wall_seconds > 0 else 0.0,
        steps=sim.steps,
        coverage_checks=tally.count("coverage_checks"),
        coverage_checks_by_trigger=tally.by_prefix("coverage_checks."),
        universe_refreshes=tally.count("universe_refreshes"),
        model_reloads=tally.count("model_reloads"),
        model_reloads_by_trigger=reloads,
        models_published=reloads.get("published", 0),
        heartbeats=tally.count("heartbeats"),
        actor_restarts=tally.count("actor_restarts"),
        stopped_early=sim.stopped,
        duplicate_trainings=monitor.duplicate_trainings,
        invariant_violations=list(monitor.violations),
        orders=tally.count("orders"),
        orders_failed=tally.count("orders_failed"),
        fills=tally.count("fills"),
        signals=tally.count("signals"),
        starting_balance=settings.exchange.starting_balance,
        final_equity=round(sim.final_equity, 6),
        max_drawdown=round(drawdown, 6),
        max_drawdown_quote=round(drawdown_abs, 6),
        training=TrainingSummary(
            window_days=settings.training.window_days,
            max_iter=settings.training.max_iter,
            pool=pool,
            workers=workers,
            note=training_note,
        ),
        symbols=symbols,
        equity_curve=[(hours(t), round(e, 6)) for t, e in sim.equity],
    )
