"""The model store's rejected models: what the promotion gate refused, and why."""

from __future__ import annotations

import json

import msgspec

from storage.db.database import Database
from storage.db.rows import columns, placeholders


class RejectedModelRow(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    trained_at_ms: int
    window_end_ms: int
    recorded_at: float
    reasons: list[str]  # why the promotion gate refused it
    metrics: dict[str, float]
    path: str | None  # where its artifact is kept; None if it could not be kept


class RejectedModels:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, row: RejectedModelRow) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                f"INSERT INTO rejected_models ({columns(RejectedModelRow)}) "
                f"VALUES ({placeholders(RejectedModelRow)})",
                (
                    row.symbol,
                    row.trained_at_ms,
                    row.window_end_ms,
                    row.recorded_at,
                    json.dumps(row.reasons),
                    json.dumps(row.metrics, sort_keys=True),
                    row.path,
                ),
            )

    def rejected(self, symbol: str | None = None) -> list[RejectedModelRow]:
        """Oldest first."""
        sql = f"SELECT {columns(RejectedModelRow)} FROM rejected_models"
        params: tuple[str, ...] = ()
        if symbol is not None:
            sql, params = sql + " WHERE symbol = ?", (symbol,)
        out = []
        for r in self.db.query(sql + " ORDER BY id", params):
            fields = dict(zip(RejectedModelRow.__struct_fields__, r, strict=True))
            fields["reasons"] = json.loads(fields["reasons"])
            fields["metrics"] = json.loads(fields["metrics"])
            out.append(msgspec.convert(fields, RejectedModelRow))
        return out
