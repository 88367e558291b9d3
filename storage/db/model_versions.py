"""The model store's promoted versions: which version covered which symbols, and its metrics."""

from __future__ import annotations

import json

import msgspec

from storage.db.database import Database
from storage.db.rows import columns, placeholders


class ModelVersionRow(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    symbols: list[str]
    trained_at_ms: int
    recorded_at: float
    source: str  # "published" by this bot, or "found on disk" at a start
    metrics: dict[str, float]
    sha256: str


class ModelVersions:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, row: ModelVersionRow) -> bool:
        """Remember a promoted version; False if it was already recorded."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                f"INSERT OR IGNORE INTO model_versions ({columns(ModelVersionRow)}) "
                f"VALUES ({placeholders(ModelVersionRow)})",
                (
                    row.version,
                    json.dumps(row.symbols),
                    row.trained_at_ms,
                    row.recorded_at,
                    row.source,
                    json.dumps(row.metrics, sort_keys=True),
                    row.sha256,
                ),
            )
            return cursor.rowcount == 1

    def versions(self) -> list[ModelVersionRow]:
        rows = self.db.query(
            f"SELECT {columns(ModelVersionRow)} FROM model_versions ORDER BY version"
        )
        out = []
        for r in rows:
            fields = dict(zip(ModelVersionRow.__struct_fields__, r, strict=True))
            fields["symbols"] = json.loads(fields["symbols"])
            fields["metrics"] = json.loads(fields["metrics"])
            out.append(msgspec.convert(fields, ModelVersionRow))
        return out
