"""The trader's ledger in the database: orders, fills, positions and the trader's values.

Implements `storage.ledger.Ledger` (whose docstring has the order state machine);
every write is one transaction, and `transaction()` groups several.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from storage.db.database import Database
from storage.db.rows import columns, from_row, placeholders, values
from storage.ledger import (
    FillRow,
    OrderRow,
    OrderState,
    PositionRow,
    UnknownOrder,
    checked_update,
    fill_between,
)


class SqliteLedger:
    """`storage.ledger.Ledger` in the database: orders, fills, positions, trader values."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_intent(self, row: OrderRow) -> bool:
        if row.state is not OrderState.NEW:
            raise ValueError(f"{row.symbol}: an order is recorded NEW, not {row.state}")
        with self.db.transaction() as conn:
            cursor = conn.execute(
                f"INSERT OR IGNORE INTO orders ({columns(OrderRow)}) "
                f"VALUES ({placeholders(OrderRow)})",
                values(row),
            )
            return cursor.rowcount == 1

    def update(self, client_order_id: str, **changes: Any) -> OrderRow:
        with self.db.transaction() as conn:
            old = self.get(client_order_id)
            if old is None:
                raise UnknownOrder(client_order_id)
            row = checked_update(old, changes)
            if row is old:
                return old
            assignments = ", ".join(f"{name} = ?" for name in OrderRow.__struct_fields__[1:])
            conn.execute(
                f"UPDATE orders SET {assignments} WHERE client_order_id = ?",
                (*values(row)[1:], client_order_id),
            )
            fill = fill_between(old, row)
            if fill is not None:
                conn.execute(
                    f"INSERT INTO fills ({columns(FillRow)}) VALUES ({placeholders(FillRow)})",
                    values(fill),
                )
            return row

    def get(self, client_order_id: str) -> OrderRow | None:
        rows = self.db.query(
            f"SELECT {columns(OrderRow)} FROM orders WHERE client_order_id = ?",
            (client_order_id,),
        )
        return from_row(OrderRow, rows[0]) if rows else None

    def orders(self, *states: OrderState) -> list[OrderRow]:
        sql = f"SELECT {columns(OrderRow)} FROM orders"
        if states:
            sql += f" WHERE state IN ({', '.join('?' for _ in states)})"
        rows = self.db.query(sql + " ORDER BY created_at, rowid", [str(s) for s in states])
        return [from_row(OrderRow, r) for r in rows]

    def fills(self, client_order_id: str | None = None) -> list[FillRow]:
        sql = f"SELECT {columns(FillRow)} FROM fills"
        params: tuple[str, ...] = ()
        if client_order_id is not None:
            sql, params = sql + " WHERE client_order_id = ?", (client_order_id,)
        return [from_row(FillRow, r) for r in self.db.query(sql + " ORDER BY id", params)]

    def positions(self) -> dict[str, PositionRow]:
        rows = self.db.query(f"SELECT {columns(PositionRow)} FROM positions ORDER BY symbol")
        return {r[0]: from_row(PositionRow, r) for r in rows}

    def set_position(self, symbol: str, row: PositionRow | None) -> None:
        with self.db.transaction() as conn:
            if row is None:
                conn.execute("DELETE FROM positions WHERE symbol = ?", (symbol,))
                return
            if row.symbol != symbol:
                raise ValueError(f"position of {row.symbol} filed under {symbol}")
            conn.execute(
                f"INSERT OR REPLACE INTO positions ({columns(PositionRow)}) "
                f"VALUES ({placeholders(PositionRow)})",
                values(row),
            )

    def value(self, key: str) -> str | None:
        rows = self.db.query("SELECT value FROM trader_values WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_value(self, key: str, value: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO trader_values (key, value) VALUES (?, ?)", (key, value)
            )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.transaction():
            yield
