"""Logging set-up shared by the live bot and the simulation: one line per event, UTC.
"""

from __future__ import annotations

import logging
import sys
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path


def configure_logging(level: str) -> None:
    formatter = logging.Formatter(
        "%(asctime)s %(levelname)-7s %(name)-24s %(message)s", "%Y-%m-%d %H:%M:%S"
    )
    formatter.converter = time.gmtime  # UTC, like the exchange
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pykka").setLevel(logging.WARNING)


def add_log_file(path: Path, level: str, max_bytes: int, backups: int) -> RotatingFileHandler:
    """A rotating log file beside the handlers already set up, with the same lines.

    The handlers already there keep the level the root logger had (the console's),
    so a file at DEBUG does not make the console say more.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.setLevel(level)
    if root.handlers:
        handler.setFormatter(root.handlers[0].formatter)
    for existing in root.handlers:
        if existing.level == logging.NOTSET:
            existing.setLevel(root.level)
    root.addHandler(handler)
    root.setLevel(min(root.level, handler.level))
    return handler
