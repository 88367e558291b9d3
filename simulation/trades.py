"""What a simulation's trades made, beside what holding would have made.

Pure, apart from `fetch_prices` (which asks the exchange for the run's candles
once it is over). The summary takes from here:

- per symbol: fees paid, round trips and wins, net PnL of what was sold (after
  both fills' fees, `policy.results`), trades per day, and each fill as a marker
  for the price chart (exits carry their round trip's net PnL);
- buy and hold: each symbol bought at the open of its first candle in the run
  (at the start, or at its listing) and sold at the last close, paying the fee
  and the slippage on both fills; the run's figure holds every symbol with an
  equal share of the starting balance (cash until a symbol lists).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Mapping, Sequence

import msgspec

from config.settings import timeframe_s
from exchange.port import ExchangePort
from exchange.types import ExchangeError
from policy.lifecycle import DAY_S
from policy.results import TradeBook
from storage.ledger import FillRow

log = logging.getLogger("tradeactors.simulation")

HOUR_S = 3600.0
PAGE = 1000
MAX_CHART_POINTS = 400  # per symbol: enough for a chart, small enough for summary.json

Candle = tuple[float, float, float]  # (open time, open, close), seconds and quote


class Marker(msgspec.Struct, array_like=True):
    """A fill on the price chart: `[hours, "buy"|"sell", price, round trip net PnL | null]`."""

    hours: float
    side: str
    price: float
    net_pnl: float | None = None


class SymbolTrades(msgspec.Struct, kw_only=True):
    fees_quote: float
    round_trips: int
    wins: int
    net_pnl: float  # realized, after both fills' fees
    trades_per_day: float  # fills per simulated day
    buy_hold_return_pct: float | None  # None: no candle in the run
    prices: list[tuple[float, float]]  # (hours since start, close), thinned for the chart
    trades: list[Marker]


class TradeFigures(msgspec.Struct, kw_only=True):
    fees_quote: float
    round_trips: int
    wins: int
    net_pnl: float
    trades_per_day: float
    buy_hold_return_pct: float | None  # equal shares of every symbol with candles
    buy_hold_curve: list[tuple[float, float]]  # (hours since start, value of the balance)
    symbols: dict[str, SymbolTrades]

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.round_trips if self.round_trips else None


def fetch_prices(
    exchange: ExchangePort, timeframe: str, symbols: Iterable[str], start: float, end: float
) -> dict[str, list[Candle]]:
    """Every candle of each symbol that opened at or after `start` and closed by `end`."""
    tf_ms = timeframe_s(timeframe) * 1000
    end_ms = int(end * 1000)
    prices: dict[str, list[Candle]] = {}
    for symbol in symbols:
        rows: list[Candle] = []
        since = int(start * 1000)
        try:
            while since + tf_ms <= end_ms:
                page = exchange.fetch_ohlcv(symbol, timeframe, since_ms=since, limit=PAGE)
                rows += [(c[0] / 1000, c[1], c[4]) for c in page if c[0] + tf_ms <= end_ms]
                if len(page) < PAGE:
                    break
                since = int(page[-1][0]) + tf_ms
        except ExchangeError as exc:
            log.warning("%s: no prices for the summary: %s", symbol, exc)
        prices[symbol] = rows
    return prices


def hold_factor(fee_rate: float, slippage_bps: float) -> float:
    """What a buy and a sale at the same price leave of the money: both fees and slippages."""
    slip = slippage_bps / 10_000
    return (1 - fee_rate) ** 2 * (1 - slip) / (1 + slip)


def buy_hold_return_pct(candles: Sequence[Candle], factor: float) -> float | None:
    if not candles:
        return None
    return 100 * (factor * candles[-1][2] / candles[0][1] - 1)


def buy_hold_curve(
    prices: Mapping[str, Sequence[Candle]],
    times: Sequence[float],
    *,
    tf_s: float,
    factor: float,
    balance: float,
) -> list[float]:
    """The balance held in equal shares of every symbol with candles, valued at each time."""
    held = [candles for candles in prices.values() if candles]
    if not held:
        return [balance for _ in times]
    closes = [[c[0] + tf_s for c in candles] for candles in held]
    values = []
    for t in times:
        total = 0.0
        for candles, closed_at in zip(held, closes, strict=True):
            first_open = candles[0][1]
            if t < candles[0][0]:
                total += 1.0  # not listed yet: still cash
                continue
            i = bisect.bisect_right(closed_at, t) - 1
            price = candles[i][2] if i >= 0 else first_open
            total += factor * price / first_open
        values.append(balance * total / len(held))
    return values


def figures(
    fills: Sequence[FillRow],
    prices: Mapping[str, Sequence[Candle]],
    *,
    start: float,
    end: float,
    times: Sequence[float],
    tf_s: float,
    fee_rate: float,
    slippage_bps: float,
    balance: float,
) -> TradeFigures:
    """The trade results of a run from its fills and candles; `times`: the equity samples."""
    days = max(end - start, 1e-9) / DAY_S
    hours = lambda t: round((t - start) / HOUR_S, 4)  # noqa: E731
    book = TradeBook()
    markers: dict[str, list[Marker]] = {}
    counts: dict[str, int] = {}
    for fill in sorted(fills, key=lambda f: f.at):
        trip = book.add(fill)
        counts[fill.symbol] = counts.get(fill.symbol, 0) + 1
        markers.setdefault(fill.symbol, []).append(
            Marker(
                hours(fill.at),
                str(fill.side),
                round(fill.price, 10),
                None if trip is None else round(trip.net_pnl, 6),
            )
        )
    factor = hold_factor(fee_rate, slippage_bps)
    symbols: dict[str, SymbolTrades] = {}
    for symbol in sorted(set(prices) | set(markers)):
        stats = book.stats(symbol)
        candles = prices.get(symbol, [])
        returns = buy_hold_return_pct(candles, factor)
        symbols[symbol] = SymbolTrades(
            fees_quote=round(stats.fees_quote, 6),
            round_trips=stats.round_trips,
            wins=stats.wins,
            net_pnl=round(stats.realized_pnl, 6),
            trades_per_day=round(counts.get(symbol, 0) / days, 4),
            buy_hold_return_pct=None if returns is None else round(returns, 4),
            prices=_thin([(hours(c[0] + tf_s), c[2]) for c in candles]),
            trades=markers.get(symbol, []),
        )
    totals = book.stats()
    held = [s.buy_hold_return_pct for s in symbols.values() if s.buy_hold_return_pct is not None]
    curve = buy_hold_curve(prices, times, tf_s=tf_s, factor=factor, balance=balance)
    return TradeFigures(
        fees_quote=round(totals.fees_quote, 6),
        round_trips=totals.round_trips,
        wins=totals.wins,
        net_pnl=round(totals.realized_pnl, 6),
        trades_per_day=round(len(fills) / days, 4),
        buy_hold_return_pct=round(sum(held) / len(held), 4) if held else None,
        buy_hold_curve=[(hours(t), round(v, 6)) for t, v in zip(times, curve, strict=True)],
        symbols=symbols,
    )


def _thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """At most about MAX_CHART_POINTS, the first and the last always kept."""
    if len(points) <= MAX_CHART_POINTS:
        return points
    step = -(-len(points) // MAX_CHART_POINTS)
    thinned = points[::step]
    if thinned[-1] != points[-1]:
        thinned.append(points[-1])
    return thinned
