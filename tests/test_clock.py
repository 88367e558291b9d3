from __future__ import annotations

import time

import pykka
import pytest

from actors.base import BaseActor, Runtime
from actors.clock import ClockStalled, RealClock, TimerTable, VirtualClock, _Timer
from actors.messages import CoverageTick, Tick
from tests.harness import Recorder, settle


class Counter(BaseActor):
    def __init__(self, clock: VirtualClock, runtime: Runtime | None = None) -> None:
        super().__init__("counter", clock, runtime=runtime)
        self.ticks: list[float] = []

    def receive(self, message: object) -> object:
        if isinstance(message, Tick):
            self.ticks.append(message.at)
        return list(self.ticks)


def _ticks(ref: pykka.ActorRef) -> list[float]:
    return ref.proxy().ticks.get()


def test_advance_900_on_a_300_s_timer_delivers_three_ticks_in_order() -> None:
    clock, runtime = VirtualClock(start=1000.0), Runtime()
    ref = Counter.start(clock, runtime)
    clock.schedule_periodic(300, ref, lambda at, tid: CoverageTick(at=at, timer_id=tid))
    clock.advance(900)
    settle(runtime)
    assert _ticks(ref) == [1300.0, 1600.0, 1900.0]
    assert clock.now() == 1900.0


def test_timers_fire_in_time_order_and_now_is_the_due_time() -> None:
    clock = VirtualClock(start=0.0)
    seen: list[tuple[str, float]] = []

    class Probe:
        def __init__(self, name: str) -> None:
            self.name = name

        def tell(self, message: Tick) -> None:
            seen.append((self.name, clock.now()))
            clock.tick_handled(message.timer_id)

    clock.schedule_periodic(300, Probe("slow"), lambda at, tid: CoverageTick(at=at, timer_id=tid))
    clock.schedule_periodic(120, Probe("fast"), lambda at, tid: CoverageTick(at=at, timer_id=tid))
    clock.schedule_once(250, Probe("once"), CoverageTick(at=250))
    clock.advance(600)
    assert seen == [
        ("fast", 120),
        ("fast", 240),
        ("once", 250),
        ("slow", 300),
        ("fast", 360),
        ("fast", 480),
        ("slow", 600),
        ("fast", 600),
    ] or seen == [
        ("fast", 120),
        ("fast", 240),
        ("once", 250),
        ("slow", 300),
        ("fast", 360),
        ("fast", 480),
        ("fast", 600),
        ("slow", 600),
    ]


def test_a_tick_still_unhandled_is_not_queued_again() -> None:
    table = TimerTable()
    target = Recorder()
    timer = _Timer(table.new_id(), target, 60.0, make_tick=lambda at, tid: CoverageTick(at=at))
    table.add(timer, 60.0)
    assert [due for _, due in table.pop_due(60.0)] == [60.0]
    # the target is busy: the next two firings are dropped, not piled up
    assert table.pop_due(120.0) == []
    assert table.pop_due(180.0) == []
    assert table.skipped == 2
    table.mark_handled(timer.timer_id)
    assert [due for _, due in table.pop_due(240.0)] == [240.0]


def test_virtual_time_does_not_pass_an_unhandled_tick() -> None:
    clock = VirtualClock(start=0.0, stall_timeout_s=0.2)
    clock.schedule_periodic(60, Recorder(), lambda at, tid: CoverageTick(at=at, timer_id=tid))
    with pytest.raises(ClockStalled, match="unhandled"):
        clock.advance(180)
    assert clock.now() == 60.0


def test_cancelled_timer_never_fires() -> None:
    clock = VirtualClock(start=0.0)
    probe = Recorder()
    timer_id = clock.schedule_once(10, probe, CoverageTick(at=10))
    clock.cancel(timer_id)
    clock.advance(100)
    assert probe.items == []


def test_time_cannot_go_backwards() -> None:
    with pytest.raises(ValueError, match="backwards"):
        VirtualClock().advance(-1)


def test_a_dead_target_loses_its_timer_not_the_clock(caplog: pytest.LogCaptureFixture) -> None:
    clock, runtime = VirtualClock(start=0.0), Runtime()
    dead = Counter.start(clock, runtime)
    dead.stop()
    alive = Counter.start(clock, runtime)
    lost = clock.schedule_periodic(60, dead, lambda at, tid: CoverageTick(at=at, timer_id=tid))
    clock.schedule_periodic(60, alive, lambda at, tid: CoverageTick(at=at, timer_id=tid))
    with caplog.at_level("WARNING", logger="tradeactors.clock"):
        clock.advance(180)
    settle(runtime)
    assert _ticks(alive) == [60.0, 120.0, 180.0]
    # one line, at the first failed delivery: which timer, and why
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"Timer {lost} (tick every 60 s to {dead!r}) dropped: ActorDeadError"
    )


def test_a_fast_real_clock_runs_its_timers_on_its_own_time() -> None:
    clock = RealClock(speed=600.0, start=1000.0)
    try:
        ref = Counter.start(clock)  # type: ignore[arg-type]
        first = clock.now() + 60
        clock.schedule_periodic(60, ref, lambda at, tid: CoverageTick(at=at, timer_id=tid))
        began = time.monotonic()
        while len(_ticks(ref)) < 3:  # 180 s of its time: 0.3 s of ours
            assert time.monotonic() - began < 10, _ticks(ref)
            time.sleep(0.01)  # waiting for the clock's thread (real), not for virtual time
        ticks = _ticks(ref)[:3]
        assert ticks == pytest.approx([first, first + 60, first + 120], abs=1.0)
        assert 1000.0 + 180 <= clock.now() < 1000.0 + 600 * (time.monotonic() - began + 1)
    finally:
        clock.stop()
    with pytest.raises(ValueError, match="speed"):
        RealClock(speed=0)
