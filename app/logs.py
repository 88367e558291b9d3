"""Logging set-up shared by the live bot and the simulation: one line per event, UTC.

`configure_logging` is the only place that installs handlers on the root logger.
The live bot logs to stderr at `logging.level`, stamped with wall time, through a
`TerminalHandler` that draws long work (history downloads, `core.progress`) as one
bar line on a terminal; the simulation stamps lines with its virtual clock, writes
`level` and up to its log file and only warnings to the terminal (under its
progress bar). No file ever gets the progress steps, only the line at the end.
"""

from __future__ import annotations

import logging
import sys
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TextIO

from actors.clock import Clock
from core.progress import NoProgress, Progress, progress_of
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


class TerminalHandler(logging.StreamHandler[TextIO]):
    """The console: ordinary lines as they come; progress steps as one bar line, redrawn
    in place below them on a terminal (at most 10 times a second) and dropped elsewhere
    (a pipe or a service's journal gets the line logged when the work is done)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self.tasks: dict[tuple[str, str], Progress] = {}
        self.shown = False
        self.last_draw = -1.0

    def is_terminal(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def emit(self, record: logging.LogRecord) -> None:
        step = progress_of(record)
        if step is None:
            self._erase()
            super().emit(record)
            self._draw()
            return
        if not self.is_terminal():
            return
        key = (step.what, step.task)
        if step.ended:
            # an ended task stays in its bar, full, until its whole group ended: the bar
            # only moves forward
            self.tasks[key] = step._replace(done=step.total)
            if all(s.ended for s in self.tasks.values() if s.what == step.what):
                self.tasks = {k: s for k, s in self.tasks.items() if s.what != step.what}
        else:
            self.tasks[key] = step
        now = time.monotonic()  # redraws are for eyes: wall time
        if step.ended or step.done >= step.total or now - self.last_draw >= 0.1:
            self.last_draw = now
            self._erase()
            self._draw()

    def _erase(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.shown = False

    def _draw(self) -> None:
        if not self.tasks or not self.is_terminal():
            self.flush()
            return
        self.stream.write(progress_bar(list(self.tasks.values())))
        self.shown = True
        self.flush()


def progress_bar(steps: list[Progress], width: int = 24) -> str:
    """One line for every task under way, summed by what they do:
    `history download [##########--------------] 42%  7 symbols, 381,600 of 907,200 candles`"""
    parts = []
    for what in dict.fromkeys(step.what for step in steps):
        group = [step for step in steps if step.what == what]
        done, total = sum(s.done for s in group), sum(s.total for s in group)
        frac = min(1.0, done / total) if total > 0 else 0.0
        filled = round(frac * width)
        tasks = group[0].task if len(group) == 1 else f"{len(group)} symbols"
        parts.append(
            f"{what} [{'#' * filled}{'-' * (width - filled)}] {100 * frac:.0f}%  "
            f"{tasks}, {done:,} of {total:,} {group[0].unit}"
        )
    return "  |  ".join(parts)


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
    to_terminal = terminal or TerminalHandler()
    to_terminal.setLevel(level if terminal_level is None else terminal_level)
    handlers: list[logging.Handler] = [to_terminal]
    if file is not None:
        handlers.insert(0, logging.FileHandler(file, mode="w", encoding="utf-8"))
        handlers[0].setLevel(level)
        handlers[0].addFilter(NoProgress())
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
    handler.addFilter(NoProgress())
    if root.handlers:
        handler.setFormatter(root.handlers[0].formatter)
    for existing in root.handlers:
        if existing.level == logging.NOTSET:
            existing.setLevel(root.level)
    root.addHandler(handler)
    root.setLevel(min(root.level, handler.level))
    return handler
