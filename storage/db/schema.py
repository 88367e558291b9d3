"""The schema: ordered migrations, each applied in one transaction and recorded.

`schema_version` has one row per applied migration. A database newer than the
newest migration here (written by a newer tradeactors) is refused, never
downgraded; a file with tables but no `schema_version` is another program's.
To change the schema, append a `Migration` with the next version; never edit
one that has shipped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from storage.db.file import WHAT_TO_DO, StorageError

if TYPE_CHECKING:
    from storage.db.database import Database


class Migration(msgspec.Struct, frozen=True):
    version: int
    what: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "orders, fills, positions, trader values, symbols, training attempts, model versions",
        (
            """CREATE TABLE orders (
                client_order_id TEXT PRIMARY KEY,
                symbol TEXT NOT NULL,
                side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
                intent TEXT NOT NULL,
                amount REAL NOT NULL,
                candle_ms INTEGER NOT NULL,
                state TEXT NOT NULL CHECK (state IN
                    ('NEW', 'SENT', 'OPEN', 'PARTIAL', 'FILLED', 'CANCELED', 'REJECTED')),
                exchange_order_id TEXT,
                filled REAL NOT NULL DEFAULT 0,
                average_price REAL,
                fee_quote REAL NOT NULL DEFAULT 0,
                error TEXT,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            "CREATE INDEX orders_by_state ON orders (state)",
            "CREATE INDEX orders_by_symbol ON orders (symbol, candle_ms)",
            """CREATE TABLE fills (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                client_order_id TEXT NOT NULL REFERENCES orders (client_order_id),
                symbol TEXT NOT NULL,
                side TEXT NOT NULL,
                amount REAL NOT NULL CHECK (amount > 0),
                price REAL NOT NULL,
                fee_quote REAL NOT NULL,
                at REAL NOT NULL
            )""",
            "CREATE INDEX fills_by_order ON fills (client_order_id)",
            """CREATE TABLE positions (
                symbol TEXT PRIMARY KEY,
                amount REAL NOT NULL CHECK (amount > 0),
                entry_price REAL NOT NULL,
                opened_at REAL NOT NULL
            )""",
            "CREATE TABLE trader_values (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            """CREATE TABLE symbols (
                symbol TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                reason TEXT NOT NULL,
                since REAL NOT NULL,
                eligible_at REAL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at REAL,
                model_version TEXT,
                model_trained_at REAL,
                last_error TEXT
            )""",
            """CREATE TABLE training_attempts (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                symbol TEXT NOT NULL,
                started_at REAL NOT NULL,
                finished_at REAL,
                outcome TEXT CHECK (outcome IN ('succeeded', 'failed', 'abandoned')),
                version TEXT,
                error TEXT,
                fit_seconds REAL
            )""",
            "CREATE INDEX training_attempts_by_symbol ON training_attempts (symbol, id)",
            """CREATE TABLE model_versions (
                version TEXT PRIMARY KEY,
                symbols TEXT NOT NULL,
                trained_at_ms INTEGER NOT NULL,
                recorded_at REAL NOT NULL,
                source TEXT NOT NULL CHECK (source IN ('published', 'found on disk')),
                metrics TEXT NOT NULL,
                sha256 TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "promotion gate: symbols' verdicts, rejected training attempts, rejected models",
        (
            "ALTER TABLE symbols ADD COLUMN gate_reasons TEXT NOT NULL DEFAULT '[]'",
            "ALTER TABLE symbols ADD COLUMN rejected_at REAL",
            "ALTER TABLE symbols ADD COLUMN retry_at REAL",
            # SQLite cannot alter a CHECK constraint: the table is rebuilt with 'rejected'.
            """CREATE TABLE training_attempts_2 (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                symbol TEXT NOT NULL,
                started_at REAL NOT NULL,
                finished_at REAL,
                outcome TEXT CHECK (outcome IN ('succeeded', 'failed', 'abandoned', 'rejected')),
                version TEXT,
                error TEXT,
                fit_seconds REAL
            )""",
            "INSERT INTO training_attempts_2 SELECT id, symbol, started_at, finished_at, outcome, "
            "version, error, fit_seconds FROM training_attempts",
            "DROP TABLE training_attempts",
            "ALTER TABLE training_attempts_2 RENAME TO training_attempts",
            "CREATE INDEX training_attempts_by_symbol ON training_attempts (symbol, id)",
            """CREATE TABLE rejected_models (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                symbol TEXT NOT NULL,
                trained_at_ms INTEGER NOT NULL,
                window_end_ms INTEGER NOT NULL,
                recorded_at REAL NOT NULL,
                reasons TEXT NOT NULL,
                metrics TEXT NOT NULL,
                path TEXT
            )""",
            "CREATE INDEX rejected_models_by_symbol ON rejected_models (symbol, id)",
        ),
    ),
)


def migrate(db: Database, migrations: Sequence[Migration]) -> None:
    """Bring `db` to the newest of `migrations`; raises StorageError (the file unchanged)."""
    tables = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type='table'")}
    if "schema_version" not in tables:
        if tables - {"sqlite_sequence"}:
            raise StorageError(
                f"{db.path}: not a tradeactors database (tables {sorted(tables)} but no "
                f"schema_version). {WHAT_TO_DO}"
            )
        with db.transaction() as conn:
            conn.execute(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                "applied_at REAL NOT NULL, what TEXT NOT NULL)"
            )
    current = db.schema_version()
    latest = max((m.version for m in migrations), default=0)
    if current > latest:
        raise StorageError(
            f"{db.path}: schema version {current} is newer than this code knows "
            f"({latest}): it was written by a newer tradeactors. Run that version, or "
            "restore a backup made by this one; the file was not changed"
        )
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version <= current:
            continue
        with db.transaction() as conn:
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at, what) VALUES (?, ?, ?)",
                (migration.version, time.time(), migration.what),
            )
