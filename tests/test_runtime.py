"""Runtime state belongs to a System, not to the process: two bots in one process.

Each `Bot` is a whole System (paper exchange, its own VirtualClock, its own
Runtime). One is kept busy by a fit held in its pool; the other must settle, run
and count its messages as if it were alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from actors.messages import TrainerFinished, TrainerStarted
from models.pool import TrainingPool
from models.training import TrainJob, TrainResult
from tests.harness import Bot


class GatedPool(TrainingPool):
    """A thread pool whose fits start only once the test opens `gate`: until then, in flight."""

    def __init__(self) -> None:
        super().__init__(workers=1, kind="thread")
        self.gate = threading.Event()
        self.submitted = threading.Event()

    def submit(self, job: TrainJob) -> Future[TrainResult]:
        held: Future[TrainResult] = Future()

        def fit_when_open() -> None:
            self.gate.wait(timeout=60)
            fit = TrainingPool.submit(self, job)
            fit.add_done_callback(lambda f: _copy(f, held))

        threading.Thread(target=fit_when_open, name="gated-fit", daemon=True).start()
        self.submitted.set()
        return held


def _copy(source: Future[TrainResult], target: Future[TrainResult]) -> None:
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


@pytest.fixture
def two_bots(tmp_path: Path) -> Iterator[tuple[Bot, Bot, GatedPool]]:
    pool = GatedPool()
    busy = Bot(tmp_path / "busy", ["ETH/USDT"], pool=pool)  # no model: it trains at startup
    calm = Bot(tmp_path / "calm", ["PEPE/USDT"])  # too young to train: blocked, only ticks
    try:
        yield busy, calm, pool
    finally:
        pool.gate.set()
        busy.stop()
        calm.stop()


def test_a_busy_system_does_not_hold_up_another_systems_wait_quiet(
    two_bots: tuple[Bot, Bot, GatedPool],
) -> None:
    busy, calm, pool = two_bots
    busy.start(wait=False)
    assert pool.submitted.wait(timeout=30)  # busy's trainer has handed its fit to the pool
    calm.start()  # settles: calm does not wait for busy's fit
    assert busy.system.runtime.background.count() == 1
    assert calm.system.runtime.background.count() == 0
    with pytest.raises(TimeoutError, match="1 background jobs still running"):
        busy.system.runtime.wait_quiet(timeout=0.2)
    calm.run(900)  # calm's virtual time moves on, settling after every step
    assert calm.clock.now() - busy.clock.now() == 900
    assert busy.system.runtime.background.count() == 1  # still held
    pool.gate.set()
    busy.settle()
    assert len(busy.events.of(TrainerFinished)) == 1
    assert calm.events.of(TrainerStarted) == []


def test_message_counts_do_not_mix_between_systems(two_bots: tuple[Bot, Bot, GatedPool]) -> None:
    busy, calm, pool = two_bots
    pool.gate.set()
    busy.start()  # trains ETH and settles: nothing of busy's is left to handle
    calm.start()
    busy_handled = busy.system.runtime.handled()
    calm_handled = calm.system.runtime.handled()
    assert busy_handled > 0 and calm_handled > 0
    calm.run(900)  # coverage, trade and heartbeat ticks: calm's actors only
    assert calm.system.runtime.handled() > calm_handled
    assert busy.system.runtime.handled() == busy_handled
    busy.run(300)
    assert busy.system.runtime.handled() > busy_handled
    assert {id(ref) for ref in busy.system.runtime.actors()}.isdisjoint(
        id(ref) for ref in calm.system.runtime.actors()
    )
