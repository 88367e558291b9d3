"""Time, injected: one `Clock` protocol, a wall-time `RealClock`, a test/simulation `VirtualClock`.

Self-scheduled ticks (coverage, universe, heartbeat, health, trading) are periodic
timers owned by the clock, so no actor re-arms its own timer. A periodic timer
delivers a message into its target's mailbox; until the target has handled that
tick (its actor calls `Clock.tick_handled`, which `actors.base.BaseActor` does
for every `Tick`), the timer's next firings are dropped rather than queued, so
ticks never pile up behind a busy actor.

`VirtualClock.advance(seconds)` fires every due timer in time order. Virtual time
does not move on while a delivered tick is unhandled: the virtual actors are
infinitely fast compared with virtual time, which is what makes
`advance(900)` on a 300 s timer deliver exactly three ticks.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from actors.messages import Tick

log = logging.getLogger("tradeactors.clock")

TickFactory = Callable[[float, int], Tick]
"""Builds the tick message from (scheduled time, timer id)."""


class Mailbox(Protocol):
    """Anything with pykka's `tell`: an ActorRef, an `Address`, a test probe."""

    def tell(self, message: Any) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...

    def schedule_periodic(
        self,
        interval_s: float,
        target: Mailbox,
        make_tick: TickFactory,
        first_at: float | None = None,
    ) -> int:
        """Deliver `make_tick(at, timer_id)` to `target` every `interval_s`, first at `first_at`
        (default: now + interval). Returns the timer id."""
        ...

    def schedule_once(self, at: float, target: Mailbox, message: Any) -> int:
        """Deliver `message` to `target` once, at time `at`. Returns the timer id."""
        ...

    def cancel(self, timer_id: int) -> None: ...

    def tick_handled(self, timer_id: int) -> None:
        """Called by the target once it has handled a tick of this timer."""
        ...


class ClockStalled(RuntimeError):
    """A virtual tick stayed unhandled too long: its target is dead or stuck."""


@dataclass(order=True)
class _Entry:
    due: float
    seq: int
    timer_id: int = field(compare=False)


@dataclass
class _Timer:
    timer_id: int
    target: Mailbox
    interval_s: float | None  # None: one-shot
    make_tick: TickFactory | None = None
    message: Any = None
    pending: bool = False  # a tick was delivered and not handled yet


class TimerTable:
    """The timers of a clock, in due order. Pure bookkeeping: no threads, no wall time.

    `pop_due(now)` yields what must be delivered at or before `now`, skipping a
    periodic timer whose previous tick is still pending (and re-arming it).
    """

    def __init__(self) -> None:
        self._timers: dict[int, _Timer] = {}
        self._heap: list[_Entry] = []
        self._ids = itertools.count(1)
        self._seq = itertools.count()
        self.skipped = 0  # periodic firings dropped because the last tick was unhandled

    def add(self, timer: _Timer, due: float) -> None:
        self._timers[timer.timer_id] = timer
        heapq.heappush(self._heap, _Entry(due, next(self._seq), timer.timer_id))

    def new_id(self) -> int:
        return next(self._ids)

    def cancel(self, timer_id: int) -> None:
        self._timers.pop(timer_id, None)

    def mark_handled(self, timer_id: int) -> None:
        timer = self._timers.get(timer_id)
        if timer is not None:
            timer.pending = False

    def next_due(self) -> float | None:
        while self._heap and self._heap[0].timer_id not in self._timers:
            heapq.heappop(self._heap)
        return self._heap[0].due if self._heap else None

    def pop_due(self, now: float) -> list[tuple[_Timer, float]]:
        """Timers due at the earliest due time <= now, as (timer, due); re-arms periodic ones."""
        due = self.next_due()
        if due is None or due > now:
            return []
        fired: list[tuple[_Timer, float]] = []
        while self._heap and self._heap[0].due == due:
            entry = heapq.heappop(self._heap)
            timer = self._timers.get(entry.timer_id)
            if timer is None:
                continue
            if timer.interval_s is None:
                del self._timers[timer.timer_id]
                fired.append((timer, due))
                continue
            heapq.heappush(
                self._heap, _Entry(due + timer.interval_s, next(self._seq), timer.timer_id)
            )
            if timer.pending:
                self.skipped += 1
                continue
            timer.pending = True
            fired.append((timer, due))
        return fired

    def pending_ids(self) -> set[int]:
        return {t.timer_id for t in self._timers.values() if t.pending}


def _deliver(table: TimerTable, timer: _Timer, due: float) -> None:
    """Tell the target; a target that is gone (a stopped actor) loses its timer, not the clock."""
    try:
        if timer.interval_s is None:
            timer.target.tell(timer.message)
        else:
            assert timer.make_tick is not None
            timer.target.tell(timer.make_tick(due, timer.timer_id))
    except Exception as exc:  # pykka.ActorDeadError, or any broken mailbox
        table.cancel(timer.timer_id)
        log.warning(
            "Timer %d (%s to %r) dropped: %s: %s",
            timer.timer_id,
            _what(timer),
            timer.target,
            type(exc).__name__,
            exc,
        )


def _what(timer: _Timer) -> str:
    if timer.interval_s is None:
        return f"{type(timer.message).__name__} once"
    return f"tick every {timer.interval_s:g} s"


class _TableClock:
    """What both clocks share: the timer table behind a lock."""

    def __init__(self) -> None:
        self._table = TimerTable()
        self._cond = threading.Condition()

    def now(self) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def schedule_periodic(
        self,
        interval_s: float,
        target: Mailbox,
        make_tick: TickFactory,
        first_at: float | None = None,
    ) -> int:
        if interval_s <= 0:
            raise ValueError(f"timer interval must be > 0 s, got {interval_s}")
        with self._cond:
            timer = _Timer(self._table.new_id(), target, interval_s, make_tick=make_tick)
            self._table.add(timer, self.now() + interval_s if first_at is None else first_at)
            self._cond.notify_all()
            return timer.timer_id

    def schedule_once(self, at: float, target: Mailbox, message: Any) -> int:
        with self._cond:
            timer = _Timer(self._table.new_id(), target, None, message=message)
            self._table.add(timer, at)
            self._cond.notify_all()
            return timer.timer_id

    def cancel(self, timer_id: int) -> None:
        with self._cond:
            self._table.cancel(timer_id)
            self._cond.notify_all()

    def tick_handled(self, timer_id: int) -> None:
        with self._cond:
            self._table.mark_handled(timer_id)
            self._cond.notify_all()


class RealClock(_TableClock):
    """Wall time. One daemon thread delivers due timers; `stop()` ends it.

    `speed` > 1 runs it fast-forward from `start` (default: now), as
    `start + (wall time - wall_start) * speed`: a paper bot that lives a day in
    24 minutes, or a crash test whose restarted processes share one timeline.
    """

    def __init__(
        self, speed: float = 1.0, start: float | None = None, wall_start: float | None = None
    ) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be > 0, got {speed}")
        super().__init__()
        self._speed = speed
        self._wall_start = time.time() if wall_start is None else wall_start
        self._start = self._wall_start if start is None else start
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="clock", daemon=True)
        self._thread.start()

    def now(self) -> float:
        if self._speed == 1.0 and self._start == self._wall_start:
            return time.time()
        return self._start + (time.time() - self._wall_start) * self._speed

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                due = self._table.next_due()
                wait = None if due is None else max(0.0, due - self.now())
                if wait:
                    self._cond.wait(timeout=wait / self._speed)
                    continue
                if due is None:
                    self._cond.wait()
                    continue
                for timer, at in self._table.pop_due(self.now()):
                    _deliver(self._table, timer, at)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=2)


class VirtualClock(_TableClock):
    """Time that moves only when told to.

    `advance(seconds)` walks through every due timer in time order, setting
    `now()` to each due time before delivering, and waits (at most
    `stall_timeout_s` of real time) for the delivered ticks to be handled before
    moving past them.
    """

    def __init__(self, start: float = 1_790_000_000.0, stall_timeout_s: float = 10.0) -> None:
        super().__init__()
        self._now = start
        self._stall_timeout_s = stall_timeout_s

    def now(self) -> float:
        with self._cond:
            return self._now

    def next_due(self) -> float | None:
        with self._cond:
            return self._table.next_due()

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, delivering every timer due on the way."""
        if seconds < 0:
            raise ValueError(f"cannot move time backwards ({seconds} s)")
        with self._cond:
            target = self._now + seconds
        self.advance_to(target)

    def advance_to(self, target: float) -> None:
        with self._cond:
            while True:
                due = self._table.next_due()
                if due is None or due > target:
                    break
                self._wait_handled()
                self._now = max(self._now, due)
                for timer, at in self._table.pop_due(self._now):
                    _deliver(self._table, timer, at)
            self._wait_handled()
            self._now = max(self._now, target)

    def _wait_handled(self) -> None:
        deadline = time.monotonic() + self._stall_timeout_s
        while self._table.pending_ids():
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClockStalled(
                    f"ticks of timers {sorted(self._table.pending_ids())} unhandled after "
                    f"{self._stall_timeout_s:.0f} s of real time: is the target actor alive?"
                )
            self._cond.wait(timeout=left)
