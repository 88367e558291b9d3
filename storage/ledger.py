"""The order ledger: every order is written here (state NEW) before it is sent.

An order's client id is derived from (symbol, candle time, intent), so a second
attempt to record the same decision finds the row and does not send again.

An order moves through a state machine; `update` refuses any other move
(`IllegalTransition`), so a bug or a replayed exchange answer cannot turn a
filled order back into an open one:

    NEW -> SENT -> OPEN / PARTIAL -> FILLED / CANCELED / REJECTED
    NEW -> REJECTED          never sent (found missing after a crash)
    SENT -> FILLED / CANCELED / REJECTED

Whenever an update raises `filled`, the difference is recorded as a fill. The
ledger also keeps the trader's positions and a few of its facts (paused,
realized PnL) so that a restarted trader carries on where it stopped; group
writes that belong together in `with ledger.transaction():`.

`MemoryLedger` keeps everything for the life of the process;
`storage.db.SqliteLedger` keeps it in the database.
"""

from __future__ import annotations

import contextlib
import enum
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

import msgspec


class OrderState(enum.StrEnum):
    NEW = "NEW"  # decided and recorded, not sent yet
    SENT = "SENT"  # handed to the exchange, no answer yet
    OPEN = "OPEN"
    PARTIAL = "PARTIAL"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"


TERMINAL = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED})
UNRESOLVED = (OrderState.NEW, OrderState.SENT)  # outcome unknown after a crash
LIVE = (OrderState.OPEN, OrderState.PARTIAL)  # resting on the exchange

TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.NEW: frozenset({OrderState.SENT, OrderState.REJECTED}),
    OrderState.SENT: frozenset(
        {
            OrderState.OPEN,
            OrderState.PARTIAL,
            OrderState.FILLED,
            OrderState.CANCELED,
            OrderState.REJECTED,
        }
    ),
    OrderState.OPEN: frozenset(
        {OrderState.OPEN, OrderState.PARTIAL, OrderState.FILLED, OrderState.CANCELED}
    ),
    OrderState.PARTIAL: frozenset({OrderState.PARTIAL, OrderState.FILLED, OrderState.CANCELED}),
    OrderState.FILLED: frozenset(),
    OrderState.CANCELED: frozenset(),
    OrderState.REJECTED: frozenset(),
}


class IllegalTransition(ValueError):
    """An update the order state machine does not allow; names the order and both states."""


class UnknownOrder(KeyError):
    """`update` of a client order id that was never recorded."""


class OrderRow(msgspec.Struct, frozen=True, kw_only=True):
    client_order_id: str
    symbol: str
    side: str
    intent: str
    amount: float
    candle_ms: int
    state: OrderState = OrderState.NEW
    exchange_order_id: str | None = None
    filled: float = 0.0
    average_price: float | None = None
    fee_quote: float = 0.0
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


class FillRow(msgspec.Struct, frozen=True, kw_only=True):
    """Part of an order that executed: what `filled` grew by, at what price, for what fee."""

    client_order_id: str
    symbol: str
    side: str
    amount: float
    price: float
    fee_quote: float
    at: float


class PositionRow(msgspec.Struct, frozen=True, kw_only=True):
    """A position the trader holds (spot: base units bought and not sold yet)."""

    symbol: str
    amount: float
    entry_price: float
    opened_at: float


def checked_update(old: OrderRow, changes: dict[str, Any]) -> OrderRow:
    """`old` with `changes` applied, or IllegalTransition if the state machine forbids it."""
    unknown = set(changes) - set(OrderRow.__struct_fields__)
    if unknown:
        raise TypeError(f"unknown order fields {sorted(unknown)}")
    if "state" in changes:
        changes = {**changes, "state": OrderState(changes["state"])}
    new = msgspec.structs.replace(old, **changes)
    if _same_but_time(old, new):
        return old
    if old.state in TERMINAL:
        raise IllegalTransition(
            f"{old.symbol}: order {old.client_order_id} is {old.state}, final; "
            f"refused change to {_diff(old, new)}"
        )
    if new.state != old.state and new.state not in TRANSITIONS[old.state]:
        raise IllegalTransition(
            f"{old.symbol}: order {old.client_order_id} cannot go {old.state} -> {new.state}"
        )
    if new.filled < old.filled - 1e-12:
        raise IllegalTransition(
            f"{old.symbol}: order {old.client_order_id} filled cannot shrink "
            f"({old.filled:.10g} -> {new.filled:.10g})"
        )
    return new


def _same_but_time(old: OrderRow, new: OrderRow) -> bool:
    return msgspec.structs.replace(new, updated_at=old.updated_at) == old


def _diff(old: OrderRow, new: OrderRow) -> str:
    changed = []
    for name in OrderRow.__struct_fields__:
        value = getattr(new, name)
        if name != "updated_at" and getattr(old, name) != value:
            changed.append(f"{name}={value if isinstance(value, enum.Enum) else repr(value)}")
    return ", ".join(changed)


def fill_between(old: OrderRow, new: OrderRow) -> FillRow | None:
    """The fill that took `old.filled` to `new.filled`, or None if nothing more executed."""
    amount = new.filled - old.filled
    if amount <= 1e-15:
        return None
    new_avg = new.average_price or 0.0
    if old.filled > 0 and old.average_price is not None:
        price = (new.filled * new_avg - old.filled * old.average_price) / amount
    else:
        price = new_avg
    return FillRow(
        client_order_id=new.client_order_id,
        symbol=new.symbol,
        side=new.side,
        amount=amount,
        price=price,
        fee_quote=max(0.0, new.fee_quote - old.fee_quote),
        at=new.updated_at,
    )


class Ledger(Protocol):
    def add_intent(self, row: OrderRow) -> bool:
        """Record a NEW order; False if that client order id is already recorded."""
        ...

    def update(self, client_order_id: str, **changes: Any) -> OrderRow:
        """Apply changes (IllegalTransition if the state machine forbids them); a rise of
        `filled` is recorded as a fill."""
        ...

    def get(self, client_order_id: str) -> OrderRow | None: ...

    def orders(self, *states: OrderState) -> list[OrderRow]:
        """Orders in any of `states` (all orders if none given), oldest first."""
        ...

    def fills(self, client_order_id: str | None = None) -> list[FillRow]: ...

    def positions(self) -> dict[str, PositionRow]: ...

    def set_position(self, symbol: str, row: PositionRow | None) -> None:
        """Record the position held in `symbol` (None: flat)."""
        ...

    def value(self, key: str) -> str | None:
        """A small named fact of the trader (e.g. "trader.paused"), or None."""
        ...

    def set_value(self, key: str, value: str) -> None: ...

    def transaction(self) -> AbstractContextManager[None]:
        """Writes inside happen together or not at all (re-entrant)."""
        ...


class MemoryLedger:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._rows: dict[str, OrderRow] = {}
        self._fills: list[FillRow] = []
        self._positions: dict[str, PositionRow] = {}
        self._values: dict[str, str] = {}

    def add_intent(self, row: OrderRow) -> bool:
        with self._lock:
            if row.client_order_id in self._rows:
                return False
            self._rows[row.client_order_id] = row
            return True

    def update(self, client_order_id: str, **changes: Any) -> OrderRow:
        with self._lock:
            old = self._rows.get(client_order_id)
            if old is None:
                raise UnknownOrder(client_order_id)
            row = checked_update(old, changes)
            fill = fill_between(old, row)
            if fill is not None:
                self._fills.append(fill)
            self._rows[client_order_id] = row
            return row

    def get(self, client_order_id: str) -> OrderRow | None:
        with self._lock:
            return self._rows.get(client_order_id)

    def orders(self, *states: OrderState) -> list[OrderRow]:
        with self._lock:
            return [r for r in self._rows.values() if not states or r.state in states]

    def fills(self, client_order_id: str | None = None) -> list[FillRow]:
        with self._lock:
            return [f for f in self._fills if client_order_id in (None, f.client_order_id)]

    def positions(self) -> dict[str, PositionRow]:
        with self._lock:
            return dict(self._positions)

    def set_position(self, symbol: str, row: PositionRow | None) -> None:
        with self._lock:
            if row is None:
                self._positions.pop(symbol, None)
            else:
                self._positions[symbol] = row

    def value(self, key: str) -> str | None:
        with self._lock:
            return self._values.get(key)

    def set_value(self, key: str, value: str) -> None:
        with self._lock:
            self._values[key] = value

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            saved = (dict(self._rows), list(self._fills), dict(self._positions), dict(self._values))
            try:
                yield
            except BaseException:
                self._rows, self._fills, self._positions, self._values = saved
                raise
