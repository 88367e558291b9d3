"""Runs training jobs off the trader's threads: in worker processes, or threads for tests.

Process workers come from a forkserver that has already imported pandas and
scikit-learn (``models.training``), so starting one is cheap. Each worker caps
OpenMP/BLAS at one thread, lowers its CPU priority with ``os.nice`` and ignores
SIGINT (the supervisor owns shutdown). If a worker dies mid-fit, the job's
future raises ``BrokenProcessPool`` and the next ``submit`` gets a fresh pool.
If the bot itself dies (kill -9), its workers exit within about a second: a
worker holds its own job queue open and the forkserver's liveness pipe, so
without that neither would ever notice, and every crash would leak both.

The forkserver is started by the first process-pool ``submit`` and is shared by
the whole program. On Python 3.11 it imports the preload modules with its own
``sys.path`` (the working directory first), so the preload only takes effect when
``models`` is installed or the program runs from the repository root; otherwise
workers import the libraries at their start instead (slower, still correct).
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal, Protocol

from models.training import TrainJob, TrainResult, run_training

# Imported first by the forkserver: the thread-cap environment, then the heavy
# libraries, so every forked worker starts with them loaded.
FORKSERVER_PRELOAD: list[str] = ["models._worker_boot", "models.training"]

# Keeps the worker's threadpoolctl limit alive for the worker's lifetime.
_worker_thread_limits: Any = None


def _init_worker(nice: int, owner: int = 0) -> None:
    """Process initializer: thread caps, lower priority, leave ^C to the parent."""
    global _worker_thread_limits
    importlib.import_module("models._worker_boot")  # env caps for libraries loaded later
    importlib.import_module("models.training")  # no-op when the forkserver preloaded it
    from threadpoolctl import threadpool_limits

    _worker_thread_limits = threadpool_limits(limits=1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if nice > 0:
        with contextlib.suppress(OSError):
            os.nice(nice)
    if owner:
        watch = threading.Thread(target=_exit_without, args=(owner,), name="owner", daemon=True)
        watch.start()


def _exit_without(owner: int, every_s: float = 0.5) -> None:
    """End this worker once the process that owns the pool is gone (killed, not stopped)."""
    while _alive(owner):
        time.sleep(every_s)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process its parent has not reaped yet still answers kill(0)
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _start_quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (once) without its leak warning.

    The pool's queues hold named semaphores (forkserver workers open them by name),
    registered with the tracker, a child of this process. When the bot is killed
    (kill -9) the tracker unlinks them, as it should, and warns "There appear to be N
    leaked semaphore objects" on the terminal, a moment later, often over the next
    start's lines: a kill -9 is expected to happen (systemd, the kill tests), and its
    clean-up is already done, so the warning only misleads. A clean stop shuts the
    pool down and leaves the tracker nothing to clean.
    """
    from multiprocessing import resource_tracker

    before = os.environ.get("PYTHONWARNINGS")
    # -W syntax: action:message-prefix:category (the tracker is a fresh interpreter that
    # reads PYTHONWARNINGS at its start; nothing else is started in between)
    os.environ["PYTHONWARNINGS"] = ",".join(
        filter(None, [before, "ignore:resource_tracker:UserWarning"])
    )
    try:
        resource_tracker.ensure_running()
    finally:
        if before is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = before


class TrainingBackend(Protocol):
    """What trainers and the wiring need of a pool of fits: `TrainingPool` (worker processes
    or threads of this machine) or `models.dask_pool.DaskTrainingPool` (a Dask cluster)."""

    def submit(self, job: TrainJob) -> Future[TrainResult]: ...

    def in_flight(self) -> int: ...

    def wait_idle(self, timeout: float) -> bool: ...

    def worker_pids(self) -> list[int]: ...

    def shutdown(self, cancel_pending: bool = True) -> None: ...


class JobCount:
    """Jobs submitted and not yet finished, under one condition: what `in_flight` and
    `wait_idle` read in every pool. Subclasses count under ``self._cond``."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._in_flight = 0

    def in_flight(self) -> int:
        """Jobs submitted and not yet finished (queued or running)."""
        with self._cond:
            return self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job is queued or running; False if ``timeout`` s passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight == 0, timeout)


class TrainingPool(JobCount):
    """A small executor for ``run_training`` jobs.

    ``kind="process"`` (production) runs jobs in forkserver worker processes;
    ``kind="thread"`` runs them in threads of this process (unit tests; no
    ``nice``, no crash isolation; ``run_training`` still fits at one OpenMP
    thread). Thread-safe. A job lost to a dead worker is not retried: the caller
    sees ``BrokenProcessPool`` and decides.
    """

    def __init__(
        self,
        workers: int = 1,
        kind: Literal["process", "thread"] = "process",
        nice: int = 10,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if kind not in ("process", "thread"):
            raise ValueError(f"kind must be 'process' or 'thread', got {kind!r}")
        self._workers = workers
        self._kind = kind
        self._nice = nice
        super().__init__()
        self._broken = False
        self._closed = False
        self._executor = self._new_executor()

    def _new_executor(self) -> Executor:
        if self._kind == "thread":
            return ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="training")
        ctx = multiprocessing.get_context("forkserver")
        # Global to the forkserver; has no effect if it is already running.
        ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
        _start_quiet_resource_tracker()
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(self._nice, os.getpid()),
        )

    def _replace_executor(self) -> None:
        # Caller holds self._cond.
        old = self._executor
        self._executor = self._new_executor()
        self._broken = False
        old.shutdown(wait=False, cancel_futures=True)

    def submit(self, job: TrainJob) -> Future[TrainResult]:
        """Queue a job; the future gives its TrainResult or raises its error.

        Errors: TrainingError / ArtifactError from the job, BrokenProcessPool if
        the worker died. Raises RuntimeError after ``shutdown``. The first submit
        to a process pool may block ~1-2 s while the forkserver imports pandas
        and scikit-learn.
        """
        with self._cond:
            if self._closed:
                raise RuntimeError("TrainingPool is shut down")
            if self._broken:
                self._replace_executor()
            executor = self._executor
            self._in_flight += 1  # before the job exists, so wait_idle cannot miss it
        try:
            try:
                future = executor.submit(run_training, job)
            except BrokenProcessPool:
                # Broken before any of our futures reported it (e.g. idle worker killed).
                with self._cond:
                    if self._executor is executor:
                        self._replace_executor()
                    executor = self._executor
                future = executor.submit(run_training, job)
        except BaseException:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()
            raise
        future.add_done_callback(lambda f: self._on_done(f, executor))
        return future

    def _on_done(self, future: Future[TrainResult], executor: Executor) -> None:
        with self._cond:
            self._in_flight -= 1
            if (
                not future.cancelled()
                and isinstance(future.exception(), BrokenProcessPool)
                and executor is self._executor
            ):
                self._broken = True
            self._cond.notify_all()

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (empty for ``kind="thread"``)."""
        with self._cond:
            processes = getattr(self._executor, "_processes", None) or {}
            return [p.pid for p in list(processes.values()) if p.pid is not None]

    def shutdown(self, cancel_pending: bool = True) -> None:
        """Stop accepting jobs. With `cancel_pending`, cancel the queued ones and end the
        running fits at once: their worker processes are terminated and their futures raise
        ``BrokenProcessPool`` (a stopping bot has no use for them; a fit in a thread, which
        cannot be ended, runs to its end). Without, wait for every job."""
        with self._cond:
            self._closed = True
            executor = self._executor
        if cancel_pending:
            # before shutdown(), which forgets the processes; the executor then sees its
            # workers gone and fails their futures
            processes = getattr(executor, "_processes", None) or {}
            for process in list(processes.values()):
                with contextlib.suppress(OSError, ValueError):  # already gone
                    process.terminate()
        executor.shutdown(wait=True, cancel_futures=cancel_pending)
