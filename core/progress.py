"""Progress of long work (a history download) as log records that a terminal draws as a bar.

Long work logs `progress_record` steps at INFO with a `Progress` attached
(`extra={"progress": ...}`). The console handler of a live run
(`app.logs.TerminalHandler`) draws them as one bar line on a terminal and drops
them elsewhere; the log file never gets them (`NoProgress`). The work logs one
ordinary line when it is done, so a file (or a pipe) holds one line per download
instead of a line per step, and a person at a terminal still sees it move.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

PROGRESS_ATTR = "progress"


class Progress(NamedTuple):
    task: str  # what moves, e.g. "BTC/USDT"; one bar sums every task of the same `what`
    what: str  # e.g. "history download"
    done: int
    total: int
    unit: str  # e.g. "candles"
    ended: bool = False  # the task is over (done, failed or cancelled): off the bar


def progress_of(record: logging.LogRecord) -> Progress | None:
    """The progress a record carries, or None for an ordinary line."""
    found = getattr(record, PROGRESS_ATTR, None)
    return found if isinstance(found, Progress) else None


class NoProgress(logging.Filter):
    """Keeps progress steps out of a handler (a log file holds the line logged at the end)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return progress_of(record) is None


class ProgressSteps:
    """Logs a task's progress as records for the terminal's bar, one per whole percent at most.

    Call it with (done, total) as the work moves; `total` 0 keeps the one given at
    the start. The record's text is a readable line too, for a handler that prints it.
    """

    def __init__(self, log: logging.Logger, task: str, total: int, what: str, unit: str) -> None:
        self.log, self.task, self.total, self.what, self.unit = log, task, total, what, unit
        self.last_percent = -1
        self.last_done = 0  # the newest `done` reported

    def __call__(self, done: int, total: int = 0) -> None:
        self.last_done = done
        total = max(1, total or self.total)
        percent = min(100, 100 * done // total)
        if percent <= self.last_percent:
            return
        self.last_percent = percent
        step = Progress(self.task, self.what, min(done, total), total, self.unit)
        self.log.info(
            "%s: %s %d%% (%s of %s %s)",
            self.task,
            self.what,
            percent,
            f"{step.done:,}",
            f"{total:,}",
            self.unit,
            extra={PROGRESS_ATTR: step},
        )

    def end(self) -> None:
        """The task is over, however it ended: the bar forgets it."""
        step = Progress(self.task, self.what, 0, self.total, self.unit, ended=True)
        self.log.info("%s: %s over", self.task, self.what, extra={PROGRESS_ATTR: step})
