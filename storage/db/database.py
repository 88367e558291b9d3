"""The bot's durable state: one SQLite file, `<data_dir>/tradeactors.db`.

One `Database` per process: one connection in WAL mode with `synchronous=FULL`
(a committed write survives a kill -9 and a power cut), shared by the actor
threads behind one lock, so there is a single writer. A lock file next to the
database keeps a second bot off the same data folder.

Opening never resets anything silently. A missing file is created (built
under a temporary name and renamed, so a half-created file cannot be mistaken
for an empty one); an existing file must have a SQLite header, pass
`PRAGMA quick_check` and carry a schema this code knows (`storage.db.file`,
`storage.db.schema`). Otherwise `open` raises `StorageError` naming the file
and what to do, and the file is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from core.durable import fsync_dir, fsync_file
from storage.db.file import (
    StorageError,
    check_header,
    check_integrity,
    connect,
    refuse_orphan_wal,
    take_lock,
    write_backup,
)
from storage.db.schema import MIGRATIONS, Migration, migrate

FILE_NAME = "tradeactors.db"


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
        lock_fd = take_lock(path) if exclusive else None
        try:
            if not path.exists():
                refuse_orphan_wal(path)
                _create(path, migrations)
            check_header(path)
            conn = connect(path)
            try:
                check_integrity(conn, path)
                db = cls(path, conn, lock_fd)
                migrate(db, migrations)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return db

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
            write_backup(self._connection(), Path(dest))

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


def _create(path: Path, migrations: Sequence[Migration]) -> None:
    """A new database, built under a temporary name and renamed into place when complete."""
    tmp = path.with_name(f".{path.name}.new")
    for stale in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        stale.unlink(missing_ok=True)
    conn = connect(tmp)
    try:
        db = Database(tmp, conn, None)
        migrate(db, migrations)
    finally:
        conn.close()  # the last connection checkpoints and removes the WAL
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)
