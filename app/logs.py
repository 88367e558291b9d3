"""Logging set-up shared by the live bot and the simulation: one line per event, UTC.

`configure_logging` is the only place that installs handlers on the root logger.
The live bot logs to stderr at `logging.level`, stamped with wall time; the
simulation stamps lines with its virtual clock, writes `level` and up to its
log file and only warnings to the terminal (under its progress bar).
"""

from __future__ import annotations

import logging
import sys
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path

from actors.clock import Clock
from core.timefmt import format_utc

FORMAT = "%(asctime)s %(levelname)-7s %(name)-24s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class ClockFormatter(logging.Formatter):
    """Log lines stamped with a clock's time (virtual in a simulation), in UTC."""

    def __init__(self, clock: Clock, fmt: str = "%(asctime)s %(levelname)-7s %(message)s") -> None:
        super().__init__(fmt)
        self.clock = clock

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return format_utc(self.clock.now(), seconds=True, zone=False)


def configure_logging(
    level: str,
    *,
    clock: Clock | None = None,
    file: Path | None = None,
    terminal: logging.Handler | None = None,
    terminal_level: str | int | None = None,
) -> None:
    """Route every log line of the process: `level` and up, one line per event, UTC.

    `clock`: stamp lines with its time rather than the wall's. `file`: also write
    `level` and up there (the file is replaced). `terminal`: the handler for the
    terminal (default: stderr), at `terminal_level` (default: `level`).
    """
    formatter: logging.Formatter
    if clock is None:
        formatter = logging.Formatter(FORMAT, DATE_FORMAT)
        formatter.converter = time.gmtime  # UTC, like the exchange
    else:
        formatter = ClockFormatter(clock, FORMAT)
    to_terminal = terminal or logging.StreamHandler(sys.stderr)
    to_terminal.setLevel(level if terminal_level is None else terminal_level)
    handlers: list[logging.Handler] = [to_terminal]
    if file is not None:
        handlers.insert(0, logging.FileHandler(file, mode="w", encoding="utf-8"))
        handlers[0].setLevel(level)
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(min(handler.level for handler in handlers))
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
