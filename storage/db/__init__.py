"""The bot's durable state: one SQLite file, `<data_dir>/tradeactors.db`.

One `Database` per process (WAL, synchronous=FULL, one writer, a lock file
against a second bot); each owner gets its own repository over it:

    file.py            the file: lock, header, WAL connection, integrity check, backup copy
    schema.py          the tables as ordered migrations, and applying them
    database.py        Database: open (check, create, migrate), transactions, queries
    rows.py            table rows <-> msgspec Structs
    sqlite_ledger.py   SqliteLedger (trader): orders, fills, positions, trader values
    symbols.py         SymbolStore (coverage): symbol records, training attempts
    model_versions.py  ModelVersions (model store): the versions it promoted
    rejected_models.py RejectedModels (model store): models the promotion gate refused
    cli.py             python -m storage.db check|backup (safe while the bot runs)

The names below are what the rest of the bot imports from `storage.db`.
"""

from storage.db.database import FILE_NAME, Database
from storage.db.file import StorageError
from storage.db.model_versions import ModelVersionRow, ModelVersions
from storage.db.rejected_models import RejectedModelRow, RejectedModels
from storage.db.schema import MIGRATIONS, Migration
from storage.db.sqlite_ledger import SqliteLedger
from storage.db.symbols import StoredRecord, SymbolStore, TrainingAttempt

__all__ = [
    "FILE_NAME",
    "MIGRATIONS",
    "Database",
    "Migration",
    "ModelVersionRow",
    "ModelVersions",
    "RejectedModelRow",
    "RejectedModels",
    "SqliteLedger",
    "StorageError",
    "StoredRecord",
    "SymbolStore",
    "TrainingAttempt",
]
