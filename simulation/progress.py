"""The simulation's progress bar: one line on a terminal that log lines do not tear.

`run_with_progress` is what `simulate` and `backtest` both do around their run on a
terminal: the bar, logging in virtual time, the thread cap and Ctrl-C.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, TypeVar

from threadpoolctl import threadpool_limits

from actors.clock import Clock
from app.logs import configure_logging
from policy.lifecycle import DAY_S
from simulation.runner import HOUR_S

T = TypeVar("T")


def progress_line(done_s: float, total_s: float, wall_s: float, width: int = 24) -> str:
    """`[#########---------] day 2.4 of 7 (57.6 h)  3,210x real time  43 s`"""
    frac = 0.0 if total_s <= 0 else min(1.0, max(0.0, done_s / total_s))
    filled = round(frac * width)
    speed = f"{done_s / wall_s:,.0f}x real time" if wall_s > 0 else "-"
    return (
        f"[{'#' * filled}{'-' * (width - filled)}] day {done_s / DAY_S:.1f} of "
        f"{total_s / DAY_S:g} ({done_s / HOUR_S:.1f} h)  {speed}  {wall_s:.0f} s"
    )


class ProgressBar:
    """One line on a terminal, redrawn at most 10 times a second (silent if not a terminal)."""

    def __init__(self, total_s: float, stream: TextIO | None = None) -> None:
        self.total_s = total_s
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._last_draw = -math.inf
        self._shown = False
        self._lock = threading.Lock()

    def update(self, done_s: float, wall_s: float) -> None:
        if not self.enabled or (wall_s - self._last_draw < 0.1 and done_s < self.total_s):
            return
        with self._lock:
            self._last_draw = wall_s
            self.stream.write("\r\x1b[K" + progress_line(done_s, self.total_s, wall_s))
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        """Erase the bar (before a log line, or at the end); the next update redraws it."""
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._shown = False
                self._last_draw = -math.inf

    def finish(self) -> None:
        with self._lock:
            if self._shown:
                self.stream.write("\n")
                self.stream.flush()
                self._shown = False


class ProgressAwareHandler(logging.StreamHandler[TextIO]):
    """A stream handler that erases the progress bar before each line it writes."""

    def __init__(self, bar: ProgressBar, stream: TextIO | None = None) -> None:
        super().__init__(stream if stream is not None else bar.stream)
        self.bar = bar

    def emit(self, record: logging.LogRecord) -> None:
        self.bar.clear()
        super().emit(record)


def run_with_progress(
    command: str,
    work: Callable[[Callable[[float, float], None]], T],
    *,
    total_s: float,
    clock: Clock,
    level: str,
    log_file: Path,
) -> T | None:
    """`work(on_step)` under a progress bar over `total_s` of virtual time; None on Ctrl-C.

    Every line at `level` and up goes to `log_file`, stamped with `clock`'s time;
    warnings also to the terminal, under the bar. On Ctrl-C `command` says on stderr
    that no report was written.
    """
    bar = ProgressBar(total_s)
    configure_logging(
        level,
        clock=clock,
        file=log_file,
        terminal=ProgressAwareHandler(bar),
        terminal_level=logging.WARNING,
    )
    # As in a live run: BLAS capped process-wide (OpenMP is capped per thread by prob_up
    # and run_training), so fits in threads never oversubscribe the cores.
    thread_cap = threadpool_limits(limits=1)
    try:
        return work(bar.update)
    except KeyboardInterrupt:
        bar.finish()
        print(f"{command}: interrupted; no report written", file=sys.stderr)
        return None
    finally:
        bar.finish()
        thread_cap.restore_original_limits()
