"""The trader's book-keeping: what it holds, what it is worth, what it made.

Pure: the trader hands it the ledger's rows at start (`Portfolio.load`), each order's
recorded outcome (`apply_order`), what a reconciliation recorded (`apply_reconciled`),
each candle's close (`new_candle`) and the balances it fetched (`apply_balances`); it
answers with numbers and lines, and a test gives it rows, orders and balances directly.

It keeps:
- the open positions (the ledger's, as recorded with each order's answer);
- the last close price per symbol (positions are valued at it);
- the newest candle decided per symbol (a decided candle is never decided again, across
  a restart too: the ledger's orders say which were);
- when each symbol's last sale was decided (the cooldown: `decide(last_exit_at=...)`),
  from the ledger's filled sales at a restart;
- the round trips and fees (`TradeBook`, from the ledger's fills);
- the last balances fetched, under a request number: an older answer that arrives after
  a newer one is ignored.

Equity is cash in the quote currency plus every position at its last price (its entry
price before any candle); NaN before the first balances (the summary says `unknown`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import msgspec

from exchange.types import Balance, Order, Side
from policy.lifecycle import SymbolState, is_blocked
from policy.reconcile import position_of
from policy.results import RoundTrip, TradeBook
from policy.risk import Position
from policy.summary import summary_line
from storage.ledger import FillRow, OrderRow, PositionRow


class HeartbeatCounts(NamedTuple):
    active: int
    blocked: int
    open_positions: int


class PortfolioStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The portfolio's part of the trader's status (`TraderStatus`)."""

    positions: tuple[Position, ...]  # by symbol
    realized_pnl: float
    equity: float
    orders_placed: int
    fees_quote: float
    round_trips: int
    wins: int
    win_rate: float | None


class Portfolio:
    """Positions, last prices, cooldowns, trade results and balances of one trader."""

    def __init__(self, quote: str) -> None:
        self.quote = quote
        self.positions: dict[str, Position] = {}
        self.last_price: dict[str, float] = {}
        self.last_candle_ms: dict[str, int] = {}  # newest candle already decided on
        self.last_exit_at: dict[str, float] = {}  # when each symbol's last sell was decided
        self.book = TradeBook()  # round trips and fees
        self.orders_placed = 0  # answered by the exchange since this (re)start
        self.balances: Mapping[str, Balance] | None = None
        self.balances_seq = 0  # requests made
        self.balances_seq_seen = 0  # the newest one applied

    @classmethod
    def load(
        cls,
        quote: str,
        *,
        fills: Iterable[FillRow],
        orders: Iterable[OrderRow],
        positions: Mapping[str, PositionRow],
    ) -> Portfolio:
        """What a previous incarnation (or process) left in the ledger, from its rows."""
        portfolio = cls(quote)
        portfolio.book = TradeBook.of(fills)
        for row in orders:  # a decided candle is never decided again
            if row.candle_ms > portfolio.last_candle_ms.get(row.symbol, -1):
                portfolio.last_candle_ms[row.symbol] = row.candle_ms
            if row.side == Side.SELL and row.filled > 0:  # the cooldown survives a restart
                portfolio._exited(row.symbol, row.created_at)
        portfolio.set_positions(positions)
        return portfolio

    def set_positions(self, rows: Mapping[str, PositionRow]) -> None:
        """The ledger's positions, all of them (as a reconciliation left them)."""
        self.positions = {s: position_of(r) for s, r in rows.items()}

    def _exited(self, symbol: str, decided_at: float) -> None:
        self.last_exit_at[symbol] = max(decided_at, self.last_exit_at.get(symbol, decided_at))

    # --- what happened ---------------------------------------------------------------------

    def new_candle(self, symbol: str, candle_ms: int, price: float) -> bool:
        """Note a candle's close price; True if nothing was decided on this candle yet (it
        is then taken as decided)."""
        self.last_price[symbol] = price
        if candle_ms <= self.last_candle_ms.get(symbol, -1):
            return False
        self.last_candle_ms[symbol] = candle_ms
        return True

    def apply_order(
        self, order: Order, position: Position | None, fill: FillRow | None, now: float
    ) -> RoundTrip | None:
        """An order's answer as recorded in the ledger: the symbol's position afterwards and
        what executed with it; the round trip it closed, if it closed one."""
        self.orders_placed += 1
        if order.side == Side.SELL and order.filled > 0:
            self.last_exit_at[order.symbol] = now
        if position is None:
            self.positions.pop(order.symbol, None)
        else:
            self.positions[order.symbol] = position
        return self.book.add(fill) if fill is not None else None

    def apply_reconciled(
        self,
        fills: Iterable[FillRow],
        positions: Mapping[str, PositionRow],
        decided_at: Mapping[str, float],
    ) -> None:
        """What a reconciliation changed: the fills it recorded and the ledger's positions
        after it (it may cut them). `decided_at`: when each sale's order was recorded, by
        client order id (a sale missing there counts from its fill)."""
        for fill in fills:
            self.book.add(fill)
            if fill.side == Side.SELL:
                self._exited(fill.symbol, decided_at.get(fill.client_order_id, fill.at))
        self.set_positions(positions)

    def next_balances_seq(self) -> int:
        """The number of a new balances request."""
        self.balances_seq += 1
        return self.balances_seq

    def apply_balances(self, seq: int, balances: Mapping[str, Balance] | None) -> None:
        """The answer to request `seq`; a failed one (None), or one older than the newest
        applied, changes nothing."""
        if balances is not None and seq > self.balances_seq_seen:
            self.balances_seq_seen = seq
            self.balances = balances

    # --- what it is worth --------------------------------------------------------------------

    def equity(self, balances: Mapping[str, Balance] | None = None) -> float:
        """Cash plus positions at their last price, from `balances` or else the last ones
        applied; NaN before any."""
        balances = self.balances if balances is None else balances
        if balances is None:
            return float("nan")
        cash = balances[self.quote].total if self.quote in balances else 0.0
        held = sum(
            p.amount * self.last_price.get(s, p.entry_price) for s, p in self.positions.items()
        )
        return float(cash + held)

    def unrealized(self) -> float:
        """What the open trips would make sold at the last prices, before the sale's fee."""
        return self.book.unrealized(self.last_price)

    def summary(self, states: Iterable[SymbolState], paused: bool) -> str:
        """The candle's one INFO line (`policy.summary`)."""
        return summary_line(
            equity=self.equity(),
            quote=self.quote,
            realized_pnl=self.book.stats().realized_pnl,
            unrealized_pnl=self.unrealized(),
            open_positions=len(self.positions),
            states=states,
            paused=paused,
        )

    def heartbeat(self, states: Iterable[SymbolState]) -> HeartbeatCounts:
        """Symbols active and blocked among `states`, and the open positions."""
        listed = list(states)
        return HeartbeatCounts(
            active=sum(st is SymbolState.ACTIVE for st in listed),
            blocked=sum(is_blocked(st) for st in listed),
            open_positions=len(self.positions),
        )

    def status(self) -> PortfolioStatus:
        results = self.book.stats()
        return PortfolioStatus(
            positions=tuple(self.positions[s] for s in sorted(self.positions)),
            realized_pnl=results.realized_pnl,
            equity=self.equity(),
            orders_placed=self.orders_placed,
            fees_quote=results.fees_quote,
            round_trips=results.round_trips,
            wins=results.wins,
            win_rate=results.win_rate,
        )
