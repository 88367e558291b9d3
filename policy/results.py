"""Trade results from fills: round trips, their net PnL after every fee, fees, win rate.

Pure: feed fills in the order they happened (`TradeBook.add`); the trader keeps
one book (rebuilt from the ledger's fills at every start), the simulation
summary builds one per run. A round trip is a position opened from flat and
closed back to flat (the sale of all of it, or all but the coins a fee took).

Net PnL counts both fills' fees: a sale realizes its proceeds minus its fee,
minus the share of the entry's cost (price x amount + the entry fee) it sells.
The percentage is of that entry cost, what the trade put at risk. Example: buy
1 at 100 with a 0.10 fee, sell it at 110 with a 0.11 fee: net 110 - 0.11 -
100.10 = +9.79, +9.78 % of 100.10.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from policy.reconcile import (
    FEE_SHORTFALL as DUST,  # a remainder this small is a fee, not a position
)
from storage.ledger import FillRow


class RoundTrip(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    opened_at: float
    closed_at: float
    cost_quote: float  # what the entries cost: price x amount + their fees
    fees_quote: float  # entry and exit fees
    net_pnl: float  # proceeds of the sales after their fees, minus cost_quote
    return_pct: float  # net_pnl as a percentage of cost_quote

    @property
    def won(self) -> bool:
        return self.net_pnl > 0


class TradeStats(msgspec.Struct, frozen=True, kw_only=True):
    realized_pnl: float  # net of every fee, of what was sold (closed and partly sold trades)
    fees_quote: float  # of every fill, open positions' entries included
    round_trips: int
    wins: int

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.round_trips if self.round_trips else None


@dataclass
class _Open:
    opened_at: float
    amount: float = 0.0  # base units still held
    cost: float = 0.0  # of what is still held, fees included
    cost_total: float = 0.0  # of everything bought in this trip
    fees: float = 0.0
    pnl: float = 0.0  # realized so far by partial sales


class TradeBook:
    """Round trips per symbol, from fills given in order."""

    def __init__(self) -> None:
        self.open: dict[str, _Open] = {}
        self.trips: list[RoundTrip] = []
        self.realized: dict[str, float] = {}  # per symbol
        self.fees: dict[str, float] = {}  # per symbol

    @classmethod
    def of(cls, fills: Iterable[FillRow]) -> TradeBook:
        book = cls()
        for fill in sorted(fills, key=lambda f: f.at):  # stable: same-time fills keep their order
            book.add(fill)
        return book

    def add(self, fill: FillRow) -> RoundTrip | None:
        """Apply one fill; the round trip it closed, if it closed one."""
        symbol = fill.symbol
        self.fees[symbol] = self.fees.get(symbol, 0.0) + fill.fee_quote
        if fill.side == "buy":
            opening = self.open.setdefault(symbol, _Open(opened_at=fill.at))
            spent = fill.amount * fill.price + fill.fee_quote
            opening.amount += fill.amount
            opening.cost += spent
            opening.cost_total += spent
            opening.fees += fill.fee_quote
            return None
        trip = self.open.get(symbol)
        if trip is None or trip.amount <= 0:
            return None  # sold what no recorded buy held: only its fee counts
        sold = min(fill.amount, trip.amount)
        basis = trip.cost * sold / trip.amount
        pnl = sold * fill.price - fill.fee_quote - basis
        trip.amount -= sold
        trip.cost -= basis
        trip.fees += fill.fee_quote
        closed = trip.amount <= DUST * (trip.amount + sold)
        if closed:
            pnl -= trip.cost  # what a fee left in coins is written off with the trip
        trip.pnl += pnl
        self.realized[symbol] = self.realized.get(symbol, 0.0) + pnl
        if not closed:
            return None
        del self.open[symbol]
        done = RoundTrip(
            symbol=symbol,
            opened_at=trip.opened_at,
            closed_at=fill.at,
            cost_quote=trip.cost_total,
            fees_quote=trip.fees,
            net_pnl=trip.pnl,
            return_pct=100 * trip.pnl / trip.cost_total if trip.cost_total else 0.0,
        )
        self.trips.append(done)
        return done

    def unrealized(self, prices: dict[str, float]) -> float:
        """What the open positions would make sold at `prices`, before the sale's fee: value
        minus their cost (the entry fees included, as realized PnL counts them). A symbol
        without a price counts at its cost (zero)."""
        return sum(
            trip.amount * prices[symbol] - trip.cost
            for symbol, trip in self.open.items()
            if symbol in prices
        )

    def stats(self, symbol: str | None = None) -> TradeStats:
        """Totals, of one symbol if given."""
        if symbol is None:
            trips = self.trips
            realized, fees = sum(self.realized.values()), sum(self.fees.values())
        else:
            trips = [t for t in self.trips if t.symbol == symbol]
            realized, fees = self.realized.get(symbol, 0.0), self.fees.get(symbol, 0.0)
        return TradeStats(
            realized_pnl=realized,
            fees_quote=fees,
            round_trips=len(trips),
            wins=sum(t.won for t in trips),
        )


def format_round_trip(trip: RoundTrip, quote: str) -> str:
    """`round trip +0.42 USDT (+0.35 %)`"""
    return f"round trip {trip.net_pnl:+.2f} {quote} ({trip.return_pct:+.2f} %)"
