"""Training for a simulation: fits run in parallel, their results come back in a fixed order."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import Future
from typing import Literal

from actors.base import Runtime
from models.pool import TrainingBackend, TrainingPool
from models.training import TrainJob, TrainResult


class DeterministicPool:
    """A training pool whose results are handed back only when the scheduler releases them.

    Fits run as soon as they are submitted (in parallel, with several workers), in a
    `TrainingPool` or in `inner` (e.g. a Dask cluster). The
    future a trainer gets resolves in `release_next`, one job at a time in symbol
    order, after every submitted fit has finished: what happens next (publish,
    ACTIVE, first trade) then happens in the same order on every run.

    `runtime` is the System's (the one its trainers count their fits in): a result
    held here is not work in flight, the scheduler is what waits for it.
    """

    def __init__(
        self,
        runtime: Runtime,
        workers: int = 1,
        kind: Literal["process", "thread"] = "thread",
        nice: int = 10,
        inner: TrainingBackend | None = None,
    ) -> None:
        self.inner = inner or TrainingPool(workers=workers, kind=kind, nice=nice)
        self.runtime = runtime
        self._held_lock = threading.Lock()
        self._held: list[tuple[str, int, Future[TrainResult], Future[TrainResult]]] = []
        self._seq = itertools.count()

    def submit(self, job: TrainJob) -> Future[TrainResult]:
        inner = self.inner.submit(job)
        outer: Future[TrainResult] = Future()
        with self._held_lock:
            self._held.append((job.symbol, next(self._seq), inner, outer))
        # The trainer counted this job as its runtime's background work before
        # submitting. Held here until released, it must not keep wait_quiet waiting:
        # release_next counts it again, and the trainer's completion callback ends that.
        self.runtime.background.end()
        return outer

    def held(self) -> int:
        with self._held_lock:
            return len(self._held)

    def in_flight(self) -> int:
        return self.inner.in_flight()

    def wait_idle(self, timeout: float) -> bool:
        return self.inner.wait_idle(timeout)

    def worker_pids(self) -> list[int]:
        return self.inner.worker_pids()

    def shutdown(self, cancel_pending: bool = True) -> None:
        self.inner.shutdown(cancel_pending)

    def release_next(self, timeout_s: float) -> bool:
        """Wait for every running fit, then resolve the first held job in symbol order.

        False when nothing is held. Raises TimeoutError if the fits take longer than
        `timeout_s` of real time.
        """
        if not self.held():
            return False
        if not self.wait_idle(timeout_s):
            raise TimeoutError(f"training fits still running after {timeout_s:.0f} s")
        with self._held_lock:
            self._held.sort(key=lambda entry: (entry[0], entry[1]))
            _, _, inner, outer = self._held.pop(0)
        self.runtime.background.begin()  # ended by the trainer's callback, run by what follows
        if inner.cancelled():
            outer.cancel()
            return True
        error = inner.exception()
        if error is not None:
            outer.set_exception(error)
        else:
            outer.set_result(inner.result())
        return True
