"""The bot's durable state: one SQLite file, `<data_dir>/tradeactors.db`.

One `Database` per process: one connection in WAL mode with `synchronous=FULL`
(a committed write survives a kill -9 and a power cut), shared by the actor
threads behind one lock, so there is a single writer. A lock file next to the
database keeps a second bot off the same data folder.

Opening never resets anything silently. A missing file is created (built
under a temporary name and renamed, so a half-created file cannot be mistaken
for an empty one); an existing file must have a SQLite header, pass
`PRAGMA quick_check` and carry a schema this code knows. Otherwise `open`
raises `StorageError` naming the file and what to do, and the file is left as
it was. The schema has a version (`schema_version`, one row per migration) and
ordered migrations, applied one transaction each.

Each owner gets its own repository over the shared database:
- `SqliteLedger` (trader): orders with their state machine, fills, positions and
  the trader's values; implements `storage.ledger.Ledger`.
- `SymbolStore` (coverage): symbol states and training attempts.
- `ModelVersions` (model store): the model versions it promoted.
- `RejectedModels` (model store): the models the promotion gate rejected, and why.

Operations from the command line (safe while the bot runs):

    python -m storage.db check var/tradeactors.db
    python -m storage.db backup var/tradeactors.db backup.db
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from core.durable import fsync_dir, fsync_file
from storage.ledger import (
    FillRow,
    OrderRow,
    OrderState,
    PositionRow,
    UnknownOrder,
    checked_update,
    fill_between,
)

FILE_NAME = "tradeactors.db"
_MAGIC = b"SQLite format 3\x00"
_WHAT_TO_DO = (
    "Refusing to start; the file was not changed. Restore it from a backup "
    "(docs/operations.md, 'Backups'), or move it aside (with its -wal file) to start "
    "with empty state"
)


class StorageError(Exception):
    """The database cannot be used; the message is one line naming the file and what to do."""


# --- schema --------------------------------------------------------------------------


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


# --- the database ----------------------------------------------------------------------


class Database:
    """One SQLite file, one connection, one lock. Use `Database.open(path)`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int | None) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._lock_fd = lock_fd
        self._lock = threading.RLock()
        self._depth = 0

    # --- opening ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        migrations: Sequence[Migration] = MIGRATIONS,
        exclusive: bool = True,
    ) -> Database:
        """Open (or create) the database, check it, and migrate it to the newest schema.

        `exclusive`: hold `<file>.lock` for the life of this object, so a second
        bot on the same data folder is refused. Raises StorageError.
        """
        path = Path(path)
        lock_fd = _take_lock(path) if exclusive else None
        try:
            if not path.exists():
                _refuse_orphan_wal(path)
                _create(path, migrations)
            _check_header(path)
            conn = _connect(path)
            try:
                _check_integrity(conn, path)
                db = cls(path, conn, lock_fd)
                db._migrate(migrations)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return db

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        tables = {r[0] for r in self.query("SELECT name FROM sqlite_master WHERE type='table'")}
        if "schema_version" not in tables:
            if tables - {"sqlite_sequence"}:
                raise StorageError(
                    f"{self.path}: not a tradeactors database (tables {sorted(tables)} but no "
                    f"schema_version). {_WHAT_TO_DO}"
                )
            with self.transaction() as conn:
                conn.execute(
                    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                    "applied_at REAL NOT NULL, what TEXT NOT NULL)"
                )
        current = self.schema_version()
        latest = max((m.version for m in migrations), default=0)
        if current > latest:
            raise StorageError(
                f"{self.path}: schema version {current} is newer than this code knows "
                f"({latest}): it was written by a newer tradeactors. Run that version, or "
                "restore a backup made by this one; the file was not changed"
            )
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version <= current:
                continue
            with self.transaction() as conn:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, applied_at, what) VALUES (?, ?, ?)",
                    (migration.version, time.time(), migration.what),
                )

    # --- use -------------------------------------------------------------------------------

    def schema_version(self) -> int:
        rows = self.query("SELECT MAX(version) FROM schema_version")
        return int(rows[0][0] or 0)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Everything inside commits together or not at all. Re-entrant in one thread."""
        with self._lock:
            conn = self._connection()
            depth = self._depth
            savepoint = f"nested_{depth}"
            self._depth += 1
            try:
                self._run(conn, "BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}")
                try:
                    yield conn
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        if depth == 0:
                            conn.execute("ROLLBACK")
                        else:
                            conn.execute(f"ROLLBACK TO {savepoint}")
                            conn.execute(f"RELEASE {savepoint}")
                    raise
                self._run(conn, "COMMIT" if depth == 0 else f"RELEASE {savepoint}")
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: write failed: {exc}") from exc
            finally:
                self._depth -= 1

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connection()
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: read failed: {exc}") from exc

    def backup(self, dest: str | Path) -> None:
        """A consistent copy of the database at `dest` (while it is in use)."""
        with self._lock:
            _backup(self._connection(), Path(dest))

    def close(self) -> None:
        """Checkpoint the write-ahead log into the file and close; idempotent."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"{self.path}: database is closed")
        return self._conn

    def _run(self, conn: sqlite3.Connection, sql: str) -> None:
        try:
            conn.execute(sql)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {sql} failed: {exc}") from exc


def _take_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StorageError(
            f"{path}: in use by another tradeactors process (pid {holder}); two bots must not "
            "share a data folder. Stop the other one or give this one its own data_dir"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _refuse_orphan_wal(path: Path) -> None:
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StorageError(
            f"{path}: missing, but its write-ahead log {wal.name} is there: the database was "
            f"moved or deleted while in use. Put it back or restore a backup; refusing to "
            "start with empty state"
        )
    for leftover in (wal, path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)


def _create(path: Path, migrations: Sequence[Migration]) -> None:
    """A new database, built under a temporary name and renamed into place when complete."""
    tmp = path.with_name(f".{path.name}.new")
    for stale in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        stale.unlink(missing_ok=True)
    conn = _connect(tmp)
    try:
        db = Database(tmp, conn, None)
        db._migrate(migrations)
    finally:
        conn.close()  # the last connection checkpoints and removes the WAL
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _check_header(path: Path) -> None:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror}. {_WHAT_TO_DO}") from exc
    if size < 100 or not head.startswith(_MAGIC):
        problem = "empty" if size == 0 else f"not a SQLite database or truncated ({size} bytes)"
        raise StorageError(f"{path}: database file is {problem}. {_WHAT_TO_DO}")


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            str(path), timeout=10.0, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open: {exc}. {_WHAT_TO_DO}") from exc
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"{path}: cannot use WAL journal mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as exc:
        conn.close()
        raise StorageError(f"{path}: database is corrupt ({exc}). {_WHAT_TO_DO}") from exc
    return conn


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: database is corrupt ({exc}). {_WHAT_TO_DO}") from exc
    lines = [line.strip() for r in rows for line in str(r[0]).splitlines()]
    problems = [line for line in lines if line and not line.startswith("***")]
    if problems != ["ok"]:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        shown = "; ".join(problems[:3]) + more
        raise StorageError(f"{path}: database is corrupt ({shown}). {_WHAT_TO_DO}")


def _backup(source: sqlite3.Connection, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.unlink(missing_ok=True)
    target = sqlite3.connect(str(tmp))
    try:
        source.backup(target)
        rows = target.execute("PRAGMA quick_check").fetchall()
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        target.close()
    if [str(r[0]) for r in rows] != ["ok"]:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{dest}: the backup copy failed its check: {rows[:3]}")
    fsync_file(tmp)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


# --- rows <-> structs ----------------------------------------------------------------------


def _columns(struct: type[msgspec.Struct]) -> str:
    return ", ".join(struct.__struct_fields__)


def _from_row(struct: type[Any], row: Sequence[Any]) -> Any:
    return msgspec.convert(dict(zip(struct.__struct_fields__, row, strict=True)), struct)


def _values(item: msgspec.Struct) -> tuple[Any, ...]:
    return tuple(
        str(v) if isinstance(v, str) else v  # StrEnum members as plain text
        for v in msgspec.structs.astuple(item)
    )


def _placeholders(struct: type[msgspec.Struct]) -> str:
    return ", ".join("?" for _ in struct.__struct_fields__)


# --- the trader's ledger -----------------------------------------------------------------


class SqliteLedger:
    """`storage.ledger.Ledger` in the database: orders, fills, positions, trader values."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_intent(self, row: OrderRow) -> bool:
        if row.state is not OrderState.NEW:
            raise ValueError(f"{row.symbol}: an order is recorded NEW, not {row.state}")
        with self.db.transaction() as conn:
            cursor = conn.execute(
                f"INSERT OR IGNORE INTO orders ({_columns(OrderRow)}) "
                f"VALUES ({_placeholders(OrderRow)})",
                _values(row),
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
                (*_values(row)[1:], client_order_id),
            )
            fill = fill_between(old, row)
            if fill is not None:
                conn.execute(
                    f"INSERT INTO fills ({_columns(FillRow)}) VALUES ({_placeholders(FillRow)})",
                    _values(fill),
                )
            return row

    def get(self, client_order_id: str) -> OrderRow | None:
        rows = self.db.query(
            f"SELECT {_columns(OrderRow)} FROM orders WHERE client_order_id = ?",
            (client_order_id,),
        )
        return _from_row(OrderRow, rows[0]) if rows else None

    def orders(self, *states: OrderState) -> list[OrderRow]:
        sql = f"SELECT {_columns(OrderRow)} FROM orders"
        if states:
            sql += f" WHERE state IN ({', '.join('?' for _ in states)})"
        rows = self.db.query(sql + " ORDER BY created_at, rowid", [str(s) for s in states])
        return [_from_row(OrderRow, r) for r in rows]

    def fills(self, client_order_id: str | None = None) -> list[FillRow]:
        sql = f"SELECT {_columns(FillRow)} FROM fills"
        params: tuple[str, ...] = ()
        if client_order_id is not None:
            sql, params = sql + " WHERE client_order_id = ?", (client_order_id,)
        return [_from_row(FillRow, r) for r in self.db.query(sql + " ORDER BY id", params)]

    def positions(self) -> dict[str, PositionRow]:
        rows = self.db.query(f"SELECT {_columns(PositionRow)} FROM positions ORDER BY symbol")
        return {r[0]: _from_row(PositionRow, r) for r in rows}

    def set_position(self, symbol: str, row: PositionRow | None) -> None:
        with self.db.transaction() as conn:
            if row is None:
                conn.execute("DELETE FROM positions WHERE symbol = ?", (symbol,))
                return
            if row.symbol != symbol:
                raise ValueError(f"position of {row.symbol} filed under {symbol}")
            conn.execute(
                f"INSERT OR REPLACE INTO positions ({_columns(PositionRow)}) "
                f"VALUES ({_placeholders(PositionRow)})",
                _values(row),
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


# --- the coverage actor's symbol states and training attempts ---------------------------


class SymbolRow(msgspec.Struct, frozen=True, kw_only=True):
    """A symbol's lifecycle record as stored: the fields of lifecycle.SymbolRecord."""

    symbol: str
    state: str
    reason: str
    since: float
    eligible_at: float | None = None
    attempts: int = 0
    next_attempt_at: float | None = None
    model_version: str | None = None
    model_trained_at: float | None = None
    last_error: str | None = None
    gate_reasons: list[str] = []  # stored as a JSON list
    rejected_at: float | None = None
    retry_at: float | None = None


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
    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self) -> list[SymbolRow]:
        rows = self.db.query(f"SELECT {_columns(SymbolRow)} FROM symbols ORDER BY symbol")
        return [_from_row(SymbolRow, _decode_reasons(r)) for r in rows]

    def save(self, row: SymbolRow) -> None:
        values = _values(msgspec.structs.replace(row, gate_reasons=[]))
        with self.db.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO symbols ({_columns(SymbolRow)}) "
                f"VALUES ({_placeholders(SymbolRow)})",
                _encode_reasons(values, row.gate_reasons),
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
        sql = f"SELECT {_columns(TrainingAttempt)} FROM training_attempts"
        params: tuple[str, ...] = ()
        if symbol is not None:
            sql, params = sql + " WHERE symbol = ?", (symbol,)
        return [_from_row(TrainingAttempt, r) for r in self.db.query(sql + " ORDER BY id", params)]


# --- the model store's promoted versions ------------------------------------------------


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
                f"INSERT OR IGNORE INTO model_versions ({_columns(ModelVersionRow)}) "
                f"VALUES ({_placeholders(ModelVersionRow)})",
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
            f"SELECT {_columns(ModelVersionRow)} FROM model_versions ORDER BY version"
        )
        out = []
        for r in rows:
            fields = dict(zip(ModelVersionRow.__struct_fields__, r, strict=True))
            fields["symbols"] = json.loads(fields["symbols"])
            fields["metrics"] = json.loads(fields["metrics"])
            out.append(msgspec.convert(fields, ModelVersionRow))
        return out


_REASONS_AT = SymbolRow.__struct_fields__.index("gate_reasons")


def _encode_reasons(values: tuple[Any, ...], reasons: Sequence[str]) -> tuple[Any, ...]:
    return (*values[:_REASONS_AT], json.dumps(list(reasons)), *values[_REASONS_AT + 1 :])


def _decode_reasons(row: Sequence[Any]) -> tuple[Any, ...]:
    return (*row[:_REASONS_AT], json.loads(row[_REASONS_AT]), *row[_REASONS_AT + 1 :])


# --- the model store's rejected models ---------------------------------------------------


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
                f"INSERT INTO rejected_models ({_columns(RejectedModelRow)}) "
                f"VALUES ({_placeholders(RejectedModelRow)})",
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
        sql = f"SELECT {_columns(RejectedModelRow)} FROM rejected_models"
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


# --- command line ---------------------------------------------------------------------------


@contextlib.contextmanager
def _beside_the_bot(path: Path) -> Iterator[sqlite3.Connection]:
    """A checked connection to an existing database, without its lock (the bot may run)."""
    if not path.exists():
        raise StorageError(f"{path}: no such file")
    _check_header(path)
    conn = _connect(path)
    try:
        yield conn
    finally:
        conn.close()  # the last connection merges the write-ahead log into the file


def _check_command(path: Path) -> int:
    try:
        with _beside_the_bot(path) as conn:
            _check_integrity(conn, path)
            db = Database(path, conn, None)
            version = db.schema_version()
            counts = {
                table: int(db.query(f"SELECT COUNT(*) FROM {table}")[0][0])
                for table in ("orders", "fills", "positions", "symbols", "model_versions")
            }
            unresolved = int(
                db.query("SELECT COUNT(*) FROM orders WHERE state IN ('NEW', 'SENT')")[0][0]
            )
    except StorageError as exc:
        print(exc, file=sys.stderr)
        return 1
    summary = ", ".join(f"{n} {table.replace('_', ' ')}" for table, n in counts.items())
    print(f"{path}: ok, schema {version}, {summary}, {unresolved} orders to reconcile")
    return 0


def _backup_command(source: Path, dest: Path) -> int:
    try:
        with _beside_the_bot(source) as conn:
            _backup(conn, dest)
    except (StorageError, sqlite3.Error) as exc:
        print(f"backup of {source} failed: {exc}", file=sys.stderr)
        return 1
    print(f"{source} -> {dest}: backup written and checked")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m storage.db", description="check or back up the bot's database"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="integrity check and a summary (safe while running)")
    check.add_argument("database", type=Path)
    backup = sub.add_parser("backup", help="consistent copy (safe while running)")
    backup.add_argument("database", type=Path)
    backup.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check_command(args.database)
    return _backup_command(args.database, args.dest)


if __name__ == "__main__":
    sys.exit(main())
