"""The database from the command line, safe while the bot runs (no lock taken):

    python -m storage.db check var/tradeactors.db
    python -m storage.db backup var/tradeactors.db backup.db

`check`: integrity check and a one-line summary (exit 1 and the problem if it
fails). `backup`: a consistent, checked copy (docs/operations.md, 'Backups').
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

from core.version import VERSION
from storage.db.database import Database
from storage.db.file import StorageError, check_header, check_integrity, connect, write_backup


@contextlib.contextmanager
def _beside_the_bot(path: Path) -> Iterator[sqlite3.Connection]:
    """A checked connection to an existing database, without its lock (the bot may run)."""
    if not path.exists():
        raise StorageError(f"{path}: no such file")
    check_header(path)
    conn = connect(path)
    try:
        yield conn
    finally:
        conn.close()  # the last connection merges the write-ahead log into the file


def _check_command(path: Path) -> int:
    try:
        with _beside_the_bot(path) as conn:
            check_integrity(conn, path)
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
            write_backup(conn, dest)
    except (StorageError, sqlite3.Error) as exc:
        print(f"backup of {source} failed: {exc}", file=sys.stderr)
        return 1
    print(f"{source} -> {dest}: backup written and checked")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m storage.db", description="check or back up the bot's database"
    )
    parser.add_argument("--version", action="version", version=f"tradeactors {VERSION}")
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
