"""A run's `Summary`: what it holds, and how a run is turned into it (pure): counts,
per-symbol outcomes, equity and drawdown.

Trade results (`simulation.trades`): `net_pnl` is what was sold made after the
fees of both fills; `pnl` also values what is still held at the last close;
`buy_hold_return_pct` buys at the first price of the run and sells at the last,
after a fee and the slippage on each fill (the run's: equal shares of every
symbol); `trades_per_day` counts fills per simulated day; `gate` is the promotion
gate's newest verdict on the symbol's models (null: none trained in the run).

`simulation.report` writes and shows the summary, `simulation.charts` draws it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from actors.messages import GateDecided
from config.settings import Settings
from core.timefmt import format_utc
from core.timeframes import timeframe_s
from policy.lifecycle import DAY_S, SymbolState
from simulation import trades
from simulation.runner import HOUR_S, SimRun
from simulation.trades import Marker
from storage.ledger import OrderRow

WALL_FIELDS = ("wall_seconds", "speedup")  # the only summary fields that differ between runs


class SymbolSummary(msgspec.Struct, kw_only=True):
    final_state: str
    trainings_started: int
    trainings_failed: int
    became_active_at: str | None  # UTC, the first time it became ACTIVE
    orders: int  # sent (filled or refused)
    pnl: float  # quote: sells - buys - fees, what is still held valued at the last close
    signals: int
    timeline: list[tuple[float, str]]  # (hours since start, state entered)
    trainings: list[tuple[float, float | None, bool | None]]  # (start h, end h, ok)
    fees_quote: float = 0.0
    round_trips: int = 0
    wins: int = 0
    net_pnl: float = 0.0  # quote: what was sold, after both fills' fees
    trades_per_day: float = 0.0  # fills per simulated day
    buy_hold_return_pct: float | None = None
    gate: GateSummary | None = None
    rejections: list[float] = []  # hours when the gate rejected one of its models
    prices: list[tuple[float, float]] = []  # (hours since start, close), for the chart
    trades: list[Marker] = []  # every fill: [hours, side, price, round trip net PnL]


class GateSummary(msgspec.Struct, kw_only=True):
    """The promotion gate's newest verdict on a symbol's models, and how many passed or not."""

    promoted: bool
    reasons: list[str]  # why not, when rejected
    version: str | None  # the published version, when promoted
    models_promoted: int
    models_rejected: int


class TrainingSummary(msgspec.Struct, kw_only=True):
    window_days: float
    max_iter: int
    pool: str
    workers: int
    note: str


class Summary(msgspec.Struct, kw_only=True):
    start: str
    days: float
    seed: int
    market_symbols: int
    sim_seconds: float
    wall_seconds: float
    speedup: float
    steps: int  # times virtual time moved
    coverage_checks: int
    coverage_checks_by_trigger: dict[str, int]
    universe_refreshes: int  # including the load at startup
    model_reloads: int
    model_reloads_by_trigger: dict[str, int]
    models_published: int
    heartbeats: int
    actor_restarts: int  # permanent actors the supervisor restarted after a crash
    stopped_early: str | None  # why the supervisor stopped the bot before the end, if it did
    duplicate_trainings: int  # a trainer started for a symbol that already had one
    invariant_violations: list[str]
    orders: int
    orders_failed: int
    fills: int
    signals: int
    starting_balance: float
    final_equity: float
    max_drawdown: float  # fraction of the running peak of equity
    max_drawdown_quote: float
    training: TrainingSummary
    symbols: dict[str, SymbolSummary]
    equity_curve: list[tuple[float, float]]  # (hours since start, equity)
    return_pct: float = 0.0  # final equity against the starting balance
    net_pnl: float = 0.0  # quote: what was sold, after both fills' fees
    fees_quote: float = 0.0
    round_trips: int = 0
    win_rate: float | None = None  # None: no round trip
    buy_hold_return_pct: float | None = None
    trades_per_day: float = 0.0  # fills per simulated day
    buy_hold_curve: list[tuple[float, float]] = []  # (hours since start, value held)


def without_wall_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """The part of a decoded summary.json that is the same on every run of the same inputs."""
    return {k: v for k, v in summary.items() if k not in WALL_FIELDS}


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
    figures = trade_figures(sim, settings)
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
            **_trade_fields(figures.symbols.get(name)),
            gate=_gate(t.gates),
            rejections=[hours(g.at) for g in t.gates if not g.promoted],
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
        return_pct=round(100 * (sim.final_equity / settings.exchange.starting_balance - 1), 6),
        net_pnl=figures.net_pnl,
        fees_quote=figures.fees_quote,
        round_trips=figures.round_trips,
        win_rate=None if figures.win_rate is None else round(figures.win_rate, 6),
        buy_hold_return_pct=figures.buy_hold_return_pct,
        trades_per_day=figures.trades_per_day,
        buy_hold_curve=figures.buy_hold_curve,
    )


def trade_figures(sim: SimRun, settings: Settings) -> trades.TradeFigures:
    """Round trips, fees and buy-and-hold of a run (`simulation.trades`)."""
    return trades.figures(
        sim.fills,
        sim.prices,
        start=sim.start,
        end=sim.end,
        times=[t for t, _ in sim.equity],
        tf_s=timeframe_s(settings.timeframe),
        fee_rate=settings.exchange.fee_rate,
        slippage_bps=settings.exchange.slippage_bps,
        balance=settings.exchange.starting_balance,
    )


def _trade_fields(figures: trades.SymbolTrades | None) -> dict[str, Any]:
    if figures is None:
        return {}
    return {
        name: getattr(figures, name)
        for name in figures.__struct_fields__
        if name in SymbolSummary.__struct_fields__
    }


def _gate(verdicts: list[GateDecided]) -> GateSummary | None:
    """The newest verdict of the promotion gate on the symbol's models in the run."""
    if not verdicts:
        return None
    last = verdicts[-1]
    return GateSummary(
        promoted=last.promoted,
        reasons=list(last.reasons),
        version=last.version,
        models_promoted=sum(v.promoted for v in verdicts),
        models_rejected=sum(not v.promoted for v in verdicts),
    )
