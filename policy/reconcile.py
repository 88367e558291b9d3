"""Restart reconciliation: the ledger is made to agree with the exchange before anything trades.

After a crash the ledger may hold orders whose outcome it never learned: NEW
(recorded, perhaps not sent) and SENT (handed to the exchange, no answer
recorded). Each is looked up on the exchange by its client order id:

- found: its real state and fill are recorded, and the fill is applied to the
  position, exactly as if the answer had arrived before the crash;
- not found: it never reached the exchange. It is marked REJECTED with the
  reason; its client id comes from (symbol, candle, intent), so the same
  decision can never be sent a second time. Except while a SENT order may still
  arrive: a request is accepted up to the exchange's recvWindow after it left
  (`settle_s`), so until then "not found" proves nothing, and the order is looked
  up again once that time has passed (`still_in_flight`).

Orders resting on the exchange (OPEN/PARTIAL) are refreshed the same way. Then
every position the bot has traded is compared with the exchange's balance of its
base asset (spot): the exchange is the truth, so a position larger than the
balance is cut to it (a mismatch); a balance larger than the position is left
alone (it may not be the bot's) and reported as a mismatch, unless the excess is
below one amount step (the unsellable remainder of a sale rounded down to the step).

`resolve_order` and `check_position` decide (pure, tested directly);
`record_order` applies one exchange answer to the ledger in one transaction (the
trader uses it for every answer too); `reconcile` does the lookups through the
`ExchangePort`, so it covers every exchange adapter.
"""

from __future__ import annotations

from typing import Any

import msgspec

from core.text import plural
from exchange.types import Order, OrderStatus, Side
from policy.risk import Position
from storage.ledger import (
    UNRESOLVED,
    FillRow,
    OrderRow,
    OrderState,
    PositionRow,
)

NEVER_SENT = "never sent"
# Binance (without BNB) takes a buy's fee from the coins bought: 0.1 % less than filled is
# held. A shortfall up to this fraction of the position is a fee, not a mismatch.
FEE_SHORTFALL = 0.005


def order_state(order: Order) -> OrderState:
    """The ledger state of an order as the exchange reports it."""
    if order.status is OrderStatus.OPEN:
        return OrderState.PARTIAL if order.filled > 0 else OrderState.OPEN
    return {
        OrderStatus.CLOSED: OrderState.FILLED,
        OrderStatus.CANCELED: OrderState.CANCELED,
        OrderStatus.REJECTED: OrderState.REJECTED,
    }[order.status]


def order_changes(order: Order, now: float) -> dict[str, Any]:
    """The ledger fields an exchange answer sets."""
    changes: dict[str, Any] = {
        "state": order_state(order),
        "exchange_order_id": order.exchange_order_id,
        "filled": order.filled,
        "average_price": order.average_price,
        "fee_quote": order.fee_quote,
        "updated_at": now,
    }
    if order.status is OrderStatus.REJECTED and order.reason:
        changes["error"] = order.reason
    return changes


# --- positions ----------------------------------------------------------------------


def apply_fill(
    position: Position | None,
    symbol: str,
    side: str,
    amount: float,
    price: float,
    fee_quote: float,
    now: float,
) -> tuple[Position | None, float]:
    """The position after a fill of `amount` at `price`, and the PnL it realized (sells)."""
    if side == Side.BUY:
        if position is None:
            return Position(symbol=symbol, amount=amount, entry_price=price, opened_at=now), 0.0
        total = position.amount + amount
        entry = (position.amount * position.entry_price + amount * price) / total
        return msgspec.structs.replace(position, amount=total, entry_price=entry), 0.0
    if position is None:
        return None, 0.0  # sold what the ledger did not hold: the balance check reports it
    pnl = (price - position.entry_price) * min(amount, position.amount) - fee_quote
    left = position.amount - amount
    if left <= FEE_SHORTFALL * position.amount:  # all of it, or all the fee taken in coin left
        return None, pnl
    return msgspec.structs.replace(position, amount=left), pnl


def position_row(position: Position) -> PositionRow:
    return PositionRow(**msgspec.structs.asdict(position))


def position_of(row: PositionRow) -> Position:
    return Position(**msgspec.structs.asdict(row))


# --- deciding --------------------------------------------------------------------------


class Resolution(msgspec.Struct, frozen=True):
    outcome: str  # filled | partial | open | canceled | rejected | never sent | vanished |
    #               unchanged | conflict
    note: str | None = None  # a log line, when something changed
    mismatch: bool = False


def still_in_flight(row: OrderRow, now: float, settle_s: float) -> float | None:
    """Until when a SENT order the exchange does not have may still arrive (its request
    can be accepted up to `settle_s` after it left, which was when the row became SENT);
    None when it can no longer."""
    if row.state != OrderState.SENT or settle_s <= 0:
        return None
    until = row.updated_at + settle_s
    return until if now < until else None


def resolve_order(row: OrderRow, found: Order | None, when: str = "at the restart") -> Resolution:
    """What to make of a ledger order given what the exchange has under its client id;
    `when` the lookup happens, for the notes ("at the restart", "after an unknown outcome")."""
    coid, was = row.client_order_id, row.state
    if found is None:
        if was in UNRESOLVED:
            return Resolution(
                outcome=NEVER_SENT,
                note=f"{row.symbol}: order {coid} ({row.intent}) was {was} {when} and "
                "the exchange never saw it: marked REJECTED (never sent)",
            )
        return Resolution(
            outcome="vanished",
            note=f"{row.symbol}: order {coid} ({row.intent}) was {was} but the exchange no "
            "longer knows it: marked CANCELED",
            mismatch=True,
        )
    if found.symbol != row.symbol or found.side != row.side:
        return Resolution(
            outcome="conflict",
            note=f"{row.symbol}: client order id {coid} is a {found.side} order on "
            f"{found.symbol} on the exchange, but a {row.side} on {row.symbol} in the ledger; "
            "left as it is",
            mismatch=True,
        )
    state = order_state(found)
    if state is was and abs(found.filled - row.filled) <= 1e-15:
        return Resolution(outcome="unchanged")
    price = f" at {found.average_price:.8g}" if found.average_price else ""
    return Resolution(
        outcome=str(state).lower(),
        note=f"{row.symbol}: order {coid} ({row.intent}) was {was} {when}; the exchange "
        f"has it {state} ({found.filled:.10g} of {found.amount:.10g}{price}): recorded",
    )


class PositionCheck(msgspec.Struct, frozen=True):
    symbol: str
    ledger_amount: float
    exchange_amount: float
    position_amount: float | None  # what the position becomes; None = flat
    mismatch: str | None = None  # the log line, when they disagree
    note: str | None = None  # the log line of an adjustment that is no mismatch


def check_position(
    symbol: str, ledger_amount: float, exchange_amount: float, step: float = 0.0
) -> PositionCheck:
    """Compare a position with the exchange's balance of its base asset (spot)."""
    base = symbol.partition("/")[0]
    tolerance = max(1e-9 * max(ledger_amount, exchange_amount), step * 1e-3)
    ours = ledger_amount if ledger_amount > tolerance else None
    if abs(ledger_amount - exchange_amount) <= tolerance:
        return PositionCheck(symbol, ledger_amount, exchange_amount, ours)
    if 0 < exchange_amount - ledger_amount < step:
        # less than one amount step more: what a sale rounded down to the step left behind
        # (the buy's fee was taken in the coin). It cannot be sold, so it is not a position
        return PositionCheck(symbol, ledger_amount, exchange_amount, ours)
    if exchange_amount < ledger_amount and ledger_amount - exchange_amount <= (
        FEE_SHORTFALL * ledger_amount
    ):
        return PositionCheck(
            symbol,
            ledger_amount,
            exchange_amount,
            exchange_amount,
            note=f"{symbol}: position {ledger_amount:.10g} {base} set to the "
            f"{exchange_amount:.10g} {base} the exchange holds (fees paid in {base})",
        )
    if exchange_amount < ledger_amount:
        now_held = exchange_amount if exchange_amount > tolerance else None
        return PositionCheck(
            symbol,
            ledger_amount,
            exchange_amount,
            now_held,
            f"{symbol}: position {ledger_amount:.10g} {base} in the ledger, the exchange holds "
            f"{exchange_amount:.10g} {base}: position set to what the exchange holds",
        )
    return PositionCheck(
        symbol,
        ledger_amount,
        exchange_amount,
        ours,
        f"{symbol}: the exchange holds {exchange_amount:.10g} {base}, the ledger explains "
        f"{ledger_amount:.10g} {base}: the rest is left alone (not bought by this bot, or a "
        "fill the ledger lost)",
    )


class ReconcileReport(msgspec.Struct):
    resolved: dict[str, int] = {}  # outcome -> count, for orders that were NEW or SENT
    refreshed: int = 0  # resting orders whose state or fill moved
    open_orders: int = 0  # resting on the exchange afterwards
    positions: int = 0
    mismatches: list[str] = []
    notes: list[str] = []
    in_flight: int = 0  # SENT orders not on the exchange yet that may still arrive
    retry_at: float | None = None  # when the last of them can no longer arrive
    fills: list[FillRow] = []  # what executed that the ledger learnt of, in that order

    def summary(self, exchange: str) -> str:
        n = sum(self.resolved.values())
        order = ("filled", "partial", "open", "canceled", "rejected", NEVER_SENT)
        parts = [f"{self.resolved[k]} {k}" for k in order if self.resolved.get(k)]
        detail = f" ({', '.join(parts)})" if parts else ""
        text = f"Reconciled with {exchange}: {plural(n, 'order')} resolved{detail}"
        if self.open_orders:
            text += f", {plural(self.open_orders, 'open order')}"
        if self.in_flight:
            text += f", {plural(self.in_flight, 'order')} maybe still in flight"
        return (
            f"{text}, {plural(self.positions, 'position')}, "
            f"{plural(len(self.mismatches), 'mismatch', 'mismatches')}"
        )
