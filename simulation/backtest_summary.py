"""A backtest's summary: the simulation's summary plus what each symbol earned.

`summarize_backtest` values what is still held at the window's last close and adds,
per symbol and in total, the net return, buy and hold, fees, round trips and gaps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from config.settings import Settings
from core.timefmt import format_utc
from exchange.replay import ReplayMarket
from policy.lifecycle import DAY_S
from simulation import summary as sim_summary
from simulation.backtest_inputs import Window, utc_ms
from simulation.runner import SimRun
from simulation.summary import Summary, SymbolSummary, summarize, symbol_pnl
from storage.ledger import OrderRow

# summary fields that depend on the machine, not on the inputs
WALL_FIELDS = (*sim_summary.WALL_FIELDS, "candles_per_second")

TRAINING_NOTE = (
    "Trains as settings.training says, on the candles before the virtual now only. Fits "
    "run while virtual time stands still, so they cost wall time only; results are handed "
    "back in symbol order, so every run of the same inputs decides the same."
)


class SymbolResult(SymbolSummary, kw_only=True):
    """A symbol's part of a backtest: the simulation's fields plus what it earned."""

    candles: int  # replayed: closed inside the window
    missing_candles: int  # gaps inside the window (skipped, not interpolated)
    net_return_pct: float  # pnl as a share of the starting balance
    first_trade_at: str | None  # UTC of its first fill
    # and, from SymbolSummary, with the backtest's meaning: buy_hold_return_pct (last close /
    # first open inside the window - 1), fees_quote, round_trips (positions closed)


class BacktestSummary(Summary, kw_only=True):
    """`simulate`'s summary fields (`symbols` holds `SymbolResult`s) plus the returns."""

    source: str  # the folder or cache the candles came from
    exchange: str  # whose candles they are
    quote: str  # the currency of balances, fees and profits
    timeframe: str
    end: str  # UTC, the end of the window
    candles: int  # replayed, every symbol
    candles_per_second: float  # replayed candles per wall second
    net_return_pct: float  # final equity / starting balance - 1
    # and, from Summary: buy_hold_return_pct (the mean of the symbols': equal weights held
    # over the window), fees_quote, round_trips


def _filled(rows: Iterable[OrderRow]) -> list[OrderRow]:
    return [r for r in rows if r.filled > 0 and r.average_price is not None]


def returns_by_symbol(
    market: ReplayMarket,
    window: Window,
    orders: Iterable[OrderRow],
    pnl: Mapping[str, float],
    starting_balance: float,
) -> dict[str, dict[str, Any]]:
    """Per symbol: candles and gaps in the window, returns, fees, round trips, first fill."""
    fills = _filled(orders)
    out: dict[str, dict[str, Any]] = {}
    for symbol in market.symbols():
        rows = market.candles(symbol, window.start_ms, window.end_ms - market.base_ms + 1)
        first = max(window.start_ms, market.listed_ms(symbol))
        last = min(window.end_ms, market.end_ms(symbol))
        slots = max(0, (last - first) // market.base_ms)
        mine = [r for r in fills if r.symbol == symbol]
        hold = float(rows[-1, 4] / rows[0, 1] - 1.0) if len(rows) else 0.0
        out[symbol] = {
            "candles": len(rows),
            "missing_candles": max(0, slots - len(rows)),
            "net_return_pct": round(100 * pnl.get(symbol, 0.0) / starting_balance, 4),
            "buy_hold_return_pct": round(100 * hold, 4),
            "fees_quote": round(sum(r.fee_quote for r in mine), 10),
            "round_trips": sum(r.side == "sell" for r in mine),
            "first_trade_at": (
                format_utc(min(r.created_at for r in mine), seconds=True) if mine else None
            ),
        }
    return out


def summarize_backtest(
    run: SimRun,
    settings: Settings,
    market: ReplayMarket,
    window: Window,
    *,
    pool: str,
    workers: int,
    source: str,
    exchange: str,
) -> BacktestSummary:
    # the last close of the window values what is still held (never a later price)
    last_prices = {}
    for symbol in market.symbols():
        row = market.last_closed(symbol, window.end_ms)
        if row is not None:
            last_prices[symbol] = float(row[4])
    run = dataclasses.replace(run, last_prices=last_prices)
    base = summarize(
        run, settings, seed=0, pool=pool, workers=workers, training_note=TRAINING_NOTE
    )
    pnl = symbol_pnl(run.orders, last_prices)
    extra = returns_by_symbol(market, window, run.orders, pnl, settings.exchange.starting_balance)
    symbols: dict[str, SymbolSummary] = {}
    for name, values in extra.items():
        known = base.symbols.get(name)
        fields = msgspec.structs.asdict(known) if known is not None else _unseen(run, name)
        # the backtest's own returns, fees and round trips replace the simulation's
        symbols[name] = SymbolResult(**(fields | values))
    fields = msgspec.structs.asdict(base)
    fields["symbols"] = symbols
    fields["market_symbols"] = len(symbols)
    # the window replayed (the bot itself starts candle_delay_s into it)
    fields["start"] = utc_ms(window.start_ms)
    fields["days"] = round(window.seconds / DAY_S, 6)
    candles = sum(v["candles"] for v in extra.values())
    holds = [v["buy_hold_return_pct"] for v in extra.values()]
    start_balance = settings.exchange.starting_balance
    fields |= {
        "buy_hold_return_pct": round(sum(holds) / len(holds), 4) if holds else 0.0,
        "fees_quote": round(sum(v["fees_quote"] for v in extra.values()), 10),
        "round_trips": sum(v["round_trips"] for v in extra.values()),
    }
    return BacktestSummary(
        **fields,
        source=source,
        exchange=exchange,
        quote=settings.exchange.quote,
        timeframe=settings.timeframe,
        end=utc_ms(window.end_ms),
        candles=candles,
        candles_per_second=round(candles / run.wall_seconds, 1) if run.wall_seconds > 0 else 0.0,
        net_return_pct=round(100 * (base.final_equity / start_balance - 1), 4),
    )


def _unseen(run: SimRun, symbol: str) -> dict[str, Any]:
    """The simulation fields of a symbol the bot never saw (its data lies after the end)."""
    return {
        "final_state": run.final_states.get(symbol, "unlisted"),
        "trainings_started": 0,
        "trainings_failed": 0,
        "became_active_at": None,
        "orders": 0,
        "pnl": 0.0,
        "signals": 0,
        "timeline": [],
        "trainings": [],
    }
