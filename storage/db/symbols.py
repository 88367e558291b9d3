"""The coverage actor's symbol records and its training attempts.

Why records are stored in their encoded form: a symbol's record is
`policy.lifecycle.SymbolRecord`, and storage sits below policy (it must not
import it). Rather than mirror that Struct field by field here (two definitions
that drift apart), the store takes and gives a record as its encoded form, a
mapping of field name to plain value (str, number or None): what
`msgspec.to_builtins(record)` makes and `msgspec.convert(fields, SymbolRecord)`
reads back. The coverage actor does those two conversions; the record type is
defined once, in policy.

The `symbols` table has one column per field. The store reads the columns from
the table itself, so the schema (storage.db.schema) is the only list of them
here, and a field with no column is refused with `StorageError` (a new field
needs a migration) instead of being dropped.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import msgspec

from storage.db.database import Database
from storage.db.file import StorageError
from storage.db.rows import columns, from_row

StoredRecord = dict[str, Any]  # a record's encoded form: field name -> str | int | float | None

# Columns that hold a list (e.g. the promotion gate's reasons), kept as JSON text.
JSON_COLUMNS = frozenset({"gate_reasons"})


class TrainingAttempt(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    symbol: str
    started_at: float
    finished_at: float | None = None
    outcome: str | None = None  # None while running; succeeded | failed | abandoned | rejected
    version: str | None = None
    error: str | None = None
    fit_seconds: float | None = None


class SymbolStore:
    """Symbol records (one row per symbol, replaced on every save) and training attempts."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.columns = tuple(str(r[1]) for r in db.query("PRAGMA table_info(symbols)"))

    def load(self) -> list[StoredRecord]:
        """Every saved record's encoded form, by symbol."""
        rows = self.db.query(f"SELECT {', '.join(self.columns)} FROM symbols ORDER BY symbol")
        records = [dict(zip(self.columns, r, strict=True)) for r in rows]
        for record in records:
            for name in JSON_COLUMNS.intersection(record):
                record[name] = json.loads(record[name])
        return records

    def save(self, fields: Mapping[str, Any]) -> None:
        """Save (or replace) a record from its encoded form, e.g. `msgspec.to_builtins(record)`."""
        unknown = sorted(set(fields) - set(self.columns))
        if unknown:
            raise StorageError(
                f"{self.db.path}: the symbols table has no column for {', '.join(unknown)} "
                f"(of {fields.get('symbol', 'a record')}); a new record field needs a migration"
            )
        names = list(fields)
        with self.db.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO symbols ({', '.join(names)}) "
                f"VALUES ({', '.join('?' for _ in names)})",
                [json.dumps(list(fields[n])) if n in JSON_COLUMNS else fields[n] for n in names],
            )

    def attempt_started(self, symbol: str, at: float) -> int:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO training_attempts (symbol, started_at) VALUES (?, ?)", (symbol, at)
            )
            return int(cursor.lastrowid or 0)

    def attempt_finished(
        self,
        symbol: str,
        at: float,
        ok: bool,
        version: str | None = None,
        error: str | None = None,
        fit_seconds: float | None = None,
        rejected: bool = False,
    ) -> None:
        """Close the symbol's running attempt (or record one, if none is open).

        `rejected`: the fit succeeded but the promotion gate refused the model.
        """
        outcome = "rejected" if rejected else "succeeded" if ok else "failed"
        with self.db.transaction() as conn:
            open_ids = conn.execute(
                "SELECT id FROM training_attempts WHERE symbol = ? AND finished_at IS NULL "
                "ORDER BY id DESC LIMIT 1",
                (symbol,),
            ).fetchall()
            if not open_ids:
                conn.execute(
                    "INSERT INTO training_attempts (symbol, started_at) VALUES (?, ?)",
                    (symbol, at),
                )
                open_ids = conn.execute("SELECT last_insert_rowid()").fetchall()
            conn.execute(
                "UPDATE training_attempts SET finished_at = ?, outcome = ?, version = ?, "
                "error = ?, fit_seconds = ? WHERE id = ?",
                (at, outcome, version, error, fit_seconds, open_ids[0][0]),
            )

    def abandon_unfinished(self, at: float, keep: Collection[str], reason: str) -> list[str]:
        """Close running attempts of symbols not in `keep` (their trainer is gone)."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, symbol FROM training_attempts WHERE finished_at IS NULL ORDER BY id"
            ).fetchall()
            gone = [(i, s) for i, s in rows if s not in keep]
            conn.executemany(
                "UPDATE training_attempts SET finished_at = ?, outcome = 'abandoned', error = ? "
                "WHERE id = ?",
                [(at, reason, i) for i, _ in gone],
            )
            return [s for _, s in gone]

    def attempts(self, symbol: str | None = None) -> list[TrainingAttempt]:
        sql = f"SELECT {columns(TrainingAttempt)} FROM training_attempts"
        params: tuple[str, ...] = ()
        if symbol is not None:
            sql, params = sql + " WHERE symbol = ?", (symbol,)
        return [from_row(TrainingAttempt, r) for r in self.db.query(sql + " ORDER BY id", params)]
