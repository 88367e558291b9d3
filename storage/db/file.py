"""The database file itself: its lock, its header, a WAL connection, its integrity, a copy.

Plain functions on a path or a raw `sqlite3` connection, used by `Database.open`
and by the command line (which checks a file beside a running bot, without its
lock). Each raises `StorageError` with one line naming the file and what to do;
none of them changes a file it refuses.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path

from core.durable import fsync_dir, fsync_file

_MAGIC = b"SQLite format 3\x00"
WHAT_TO_DO = (
    "Refusing to start; the file was not changed. Restore it from a backup "
    "(docs/operations.md, 'Backups'), or move it aside (with its -wal file) to start "
    "with empty state"
)


class StorageError(Exception):
    """The database cannot be used; the message is one line naming the file and what to do."""


def take_lock(path: Path) -> int:
    """Hold `<file>.lock` (flock) so that a second bot on the same data folder is refused."""
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


def refuse_orphan_wal(path: Path) -> None:
    """A missing database whose write-ahead log remains was moved away, not never made."""
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StorageError(
            f"{path}: missing, but its write-ahead log {wal.name} is there: the database was "
            f"moved or deleted while in use. Put it back or restore a backup; refusing to "
            "start with empty state"
        )
    for leftover in (wal, path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)


def check_header(path: Path) -> None:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror}. {WHAT_TO_DO}") from exc
    if size < 100 or not head.startswith(_MAGIC):
        problem = "empty" if size == 0 else f"not a SQLite database or truncated ({size} bytes)"
        raise StorageError(f"{path}: database file is {problem}. {WHAT_TO_DO}")


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with synchronous=FULL: a committed write survives a power cut."""
    try:
        conn = sqlite3.connect(
            str(path), timeout=10.0, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open: {exc}. {WHAT_TO_DO}") from exc
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"{path}: cannot use WAL journal mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as exc:
        conn.close()
        raise StorageError(f"{path}: database is corrupt ({exc}). {WHAT_TO_DO}") from exc
    return conn


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: database is corrupt ({exc}). {WHAT_TO_DO}") from exc
    lines = [line.strip() for r in rows for line in str(r[0]).splitlines()]
    problems = [line for line in lines if line and not line.startswith("***")]
    if problems != ["ok"]:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        shown = "; ".join(problems[:3]) + more
        raise StorageError(f"{path}: database is corrupt ({shown}). {WHAT_TO_DO}")


def write_backup(source: sqlite3.Connection, dest: Path) -> None:
    """A checked, self-contained copy at `dest`, renamed into place only when complete."""
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
