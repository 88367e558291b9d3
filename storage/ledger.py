"""The order ledger: every order is written here (state NEW) before it is sent.

An order's client id is derived from (symbol, candle time, intent), so a second
attempt to record the same decision finds the row and does not send again.

`MemoryLedger` keeps the rows for the life of the process.
"""

from __future__ import annotations

import enum
import threading
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


class Ledger(Protocol):
    def add_intent(self, row: OrderRow) -> bool:
        """Record a NEW order; False if that client order id is already recorded."""
        ...

    def update(self, client_order_id: str, **changes: Any) -> OrderRow: ...

    def get(self, client_order_id: str) -> OrderRow | None: ...

    def orders(self, *states: OrderState) -> list[OrderRow]: ...


class MemoryLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, OrderRow] = {}

    def add_intent(self, row: OrderRow) -> bool:
        with self._lock:
            if row.client_order_id in self._rows:
                return False
            self._rows[row.client_order_id] = row
            return True

    def update(self, client_order_id: str, **changes: Any) -> OrderRow:
        with self._lock:
            row = msgspec.structs.replace(self._rows[client_order_id], **changes)
            self._rows[client_order_id] = row
            return row

    def get(self, client_order_id: str) -> OrderRow | None:
        with self._lock:
            return self._rows.get(client_order_id)

    def orders(self, *states: OrderState) -> list[OrderRow]:
        with self._lock:
            return [r for r in self._rows.values() if not states or r.state in states]
