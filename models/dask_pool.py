"""Runs training jobs on a Dask cluster, behind the same interface as `TrainingPool`.

(One module over 500 lines: the bot side and the worker side of one task protocol,
whose two halves must change together.)

A fit is one Dask task (`fit_on_worker`). What travels to the worker: the candles
as a numpy array, the `TrainParams`, the bot's library versions and the fingerprint
of its model code; what comes back: the model file and the manifest as bytes (a
worker on another machine does not share the bot's disk). The completion callback
writes those bytes into the trainer's local staging folder and resolves the
trainer's future with the same `TrainResult` a local fit gives, so the trainer, the
store's publish (checksum, atomic rename, version number) and everything after are
unchanged.

Nothing here blocks an actor: `submit` returns a `concurrent.futures.Future` at
once; connecting and handing jobs to the scheduler happen on the pool's own
dispatch thread, results arrive on Dask's callback thread.

Faults end the trainer's future with a `TrainingError` naming the cause: a worker
that died mid-fit (the local cluster retries nothing: `allowed_failures=0`), a fit
past `fit_deadline_s`, a scheduler that cannot be reached (logged once per outage;
every queued job fails at once, so coverage backs off and retries on its own
schedule), and a worker whose scikit-learn, numpy, Python or model code differs from
the bot's (a model pickled by another version may not load here; checked by the
task itself before it fits).

With an empty scheduler address the pool starts a `LocalCluster` bound to
127.0.0.1 (workers are processes, one thread each, their HTTP endpoints on
loopback, no dashboard); its worker processes exit with the bot.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import signal
import sys
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import sklearn
from threadpoolctl import threadpool_limits

from models import artifacts, decision, evaluation, features, strategy, training
from models.pool import JobCount
from models.training import TrainingError, TrainJob, TrainParams, TrainResult, run_training

log = logging.getLogger("tradeactors.training.dask")

# The source files that decide what a model computes: a worker running other code
# would publish a model whose features silently differ from the trader's.
_MODEL_CODE = (features, training, decision, evaluation, strategy)


# ------------------------------------------------------------------ worker side


@functools.cache
def _code_fingerprint() -> str:
    h = hashlib.sha256()
    for module in _MODEL_CODE:
        h.update(Path(str(module.__file__)).read_bytes())
    return h.hexdigest()[:16]


def worker_versions() -> dict[str, str]:
    """What a model pickled in this process depends on (called on both sides)."""
    return {
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "python": ".".join(map(str, sys.version_info[:2])),
        "model code": _code_fingerprint(),
    }


def version_problem(bot: dict[str, str], worker: dict[str, str]) -> str | None:
    """Why a model fitted with `worker`'s libraries may not load in the bot; None if it can.

    scikit-learn and the model code must be identical; numpy must share its major
    version (its pickles change across majors); Python its minor version.
    """
    differ: list[str] = []
    for name in ("scikit-learn", "model code", "python", "numpy"):
        want, have = bot.get(name, "?"), worker.get(name, "?")
        major = name == "numpy"
        if (want.split(".")[0] != have.split(".")[0]) if major else want != have:
            differ.append(f"{name} {have} (the bot: {want})")
    if not differ:
        return None
    return "it has " + ", ".join(differ) + "; a model pickled there may not load here"


class FitPayload(msgspec.Struct, frozen=True):
    """Everything a remote fit needs; pickled by Dask to the worker."""

    symbol: str
    timeframe: str
    candles: np.ndarray
    params: TrainParams
    trained_at_ms: int | None
    threads: int
    bot_versions: dict[str, str]
    nice: int = 0  # lower the fitting thread's priority (a local cluster beside the trader)

    def __repr__(self) -> str:  # a worker logs a failed task's arguments: not the candles
        return f"FitPayload({self.symbol}, {len(self.candles):,} {self.timeframe} candles)"


class Fitted(msgspec.Struct, frozen=True):
    """What a remote fit sends back: the result and the staged files as bytes."""

    result: TrainResult
    files: dict[str, bytes]


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "(not on a Dask worker)"


def _lower_priority(nice: int) -> None:
    # On Linux a nice value belongs to a thread: this lowers the fitting thread only.
    if nice <= 0:
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError, AttributeError):
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, max(current, nice))


def dask_setup(worker: Any) -> None:
    """Start-up hook of a local cluster's worker processes (they preload this module).

    A ^C in the bot's terminal reaches every process of its group. The bot stops its
    fits itself; a worker killed by the ^C first would fail them as "died mid-fit"
    and print a traceback on the way out.
    """
    with contextlib.suppress(ValueError):  # not the main thread: a worker thread in a test
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def fit_on_worker(payload: FitPayload) -> Fitted:
    """The Dask task: refuse a worker whose versions differ, fit, return the files as bytes."""
    problem = version_problem(payload.bot_versions, worker_versions())
    if problem is not None:
        where = _worker_address()
        raise TrainingError(f"{payload.symbol}: refused by Dask worker {where}: {problem}")
    _lower_priority(payload.nice)
    with tempfile.TemporaryDirectory(prefix="tradeactors-fit-") as tmp:
        job = TrainJob(
            symbol=payload.symbol,
            timeframe=payload.timeframe,
            candles=payload.candles,
            staging_dir=tmp,
            params=payload.params,
            trained_at_ms=payload.trained_at_ms,
            threads=payload.threads,
        )
        with threadpool_limits(limits=payload.threads, user_api="blas"):
            result = run_training(job)
        return Fitted(result=result, files=artifacts.staged_files(tmp))


# ------------------------------------------------------------------ bot side


def local_cluster(workers: int, threads_per_worker: int = 1) -> Any:
    """A `distributed.LocalCluster` of worker processes where every socket binds 127.0.0.1.

    The scheduler and workers listen on loopback ports chosen by the system; their
    HTTP endpoints (health, metrics) too, with no dashboard. A worker that dies
    fails its task at once (`allowed_failures=0`): coverage's backoff decides on a
    retry. Worker processes exit when this process dies (Dask's nanny watches it).
    """
    from distributed import LocalCluster

    return LocalCluster(
        host="127.0.0.1",
        protocol="tcp://",
        scheduler_port=0,
        n_workers=workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0",
        scheduler_kwargs={"dashboard": False, "allowed_failures": 0},
        # Imports pandas and scikit-learn before the first fit; dask_setup ignores ^C.
        preload=["models.dask_pool"],
        silence_logs=logging.CRITICAL,  # a failed task's log line would dump its candles
    )


def _quiet_dask_logs() -> None:
    """Our own lines say what happened to a fit, one line each; the library's would repeat
    them, some with multi-line tracebacks, among pages of INFO chatter. Its configuration
    sets levels on some child loggers too (distributed.client), so those as well."""
    loggers = logging.root.manager.loggerDict
    for name in ["distributed", *(n for n in loggers if n.startswith("distributed."))]:
        logger = logging.getLogger(name)
        if name == "distributed" or logger.level != logging.NOTSET:
            logger.setLevel(logging.CRITICAL)


def _try(what: str, action: Callable[..., Any], **kwargs: Any) -> None:
    """Best-effort clean-up (the fit's outcome is already decided): a failure is logged."""
    try:
        action(**kwargs)
    except Exception as exc:
        log.warning("Dask: %s failed: %s: %s", what, type(exc).__name__, exc)


@dataclass(eq=False)
class _Entry:
    """One job from submit to resolution."""

    symbol: str
    staging_dir: str
    outer: Future[TrainResult]
    payload: FitPayload | None  # dropped once handed to the scheduler
    dask_future: Any = None
    timer: threading.Timer | None = None
    done: bool = False
    key: str = field(default_factory=lambda: f"fit-{uuid.uuid4().hex[:12]}")


class DaskTrainingPool(JobCount):
    """`TrainingBackend` on a Dask cluster. Thread-safe; see the module docstring.

    `scheduler`: "" starts a local cluster on 127.0.0.1 with `workers` worker
    processes (one thread each); otherwise the address of a running scheduler,
    e.g. tcp://10.0.0.5:8786. `max_in_flight` fits are handed to the scheduler at
    once, the rest wait here in submission order. `nice` lowers the fitting threads
    of a local cluster (which shares the machine with the trader).
    """

    def __init__(
        self,
        scheduler: str = "",
        *,
        workers: int = 1,
        threads_per_fit: int = 1,
        max_in_flight: int = 4,
        fit_deadline_s: float = 3600.0,
        connect_timeout_s: float = 10.0,
        nice: int = 10,
    ) -> None:
        if workers < 1 or threads_per_fit < 1 or max_in_flight < 1:
            raise ValueError(
                "workers, threads_per_fit and max_in_flight must be >= 1, got "
                f"{workers}, {threads_per_fit}, {max_in_flight}"
            )
        if fit_deadline_s <= 0 or connect_timeout_s <= 0:
            raise ValueError("fit_deadline_s and connect_timeout_s must be > 0")
        self.scheduler = scheduler
        self._where = scheduler or "local cluster on 127.0.0.1"
        self._workers = workers
        self._threads = threads_per_fit
        self._max_in_flight = max_in_flight
        self._deadline_s = fit_deadline_s
        self._connect_timeout_s = connect_timeout_s
        self._nice = nice if not scheduler else 0
        self._versions = worker_versions()
        super().__init__()
        self._waiting: deque[_Entry] = deque()
        self._running: dict[str, _Entry] = {}
        self._closed = False
        self._cluster: Any = None
        self._client: Any = None
        self._outage: str | None = None  # the reason last logged, until a connect succeeds
        # One thread connects and hands jobs over, in order; an actor never waits on it.
        self._dispatch = ThreadPoolExecutor(1, thread_name_prefix="dask-dispatch")
        self._dispatch.submit(self._connect_quietly)  # at start, so an outage is logged then

    # --- the TrainingBackend interface --------------------------------------------------

    def submit(self, job: TrainJob) -> Future[TrainResult]:
        """Queue a job; the future gives its TrainResult or raises its TrainingError."""
        payload = FitPayload(
            symbol=job.symbol,
            timeframe=job.timeframe,
            candles=np.ascontiguousarray(job.candles, dtype=np.float64),
            params=job.params,
            trained_at_ms=job.trained_at_ms,
            threads=self._threads,
            bot_versions=self._versions,
            nice=self._nice,
        )
        entry = _Entry(job.symbol, str(job.staging_dir), Future(), payload)
        with self._cond:
            if self._closed:
                raise RuntimeError("DaskTrainingPool is shut down")
            self._in_flight += 1
            self._waiting.append(entry)
        self._dispatch.submit(self._pump)
        return entry.outer

    def worker_pids(self) -> list[int]:
        """Process ids of a local cluster's workers; empty for a remote cluster."""
        cluster = self._cluster
        if cluster is None:
            return []
        return [pid for w in list(cluster.workers.values()) if (pid := getattr(w, "pid", None))]

    def shutdown(self, cancel_pending: bool = True) -> None:
        """Stop accepting jobs; cancel queued and running fits (if asked), then disconnect."""
        with self._cond:
            self._closed = True
            entries = [*self._waiting, *self._running.values()]
        if cancel_pending:
            for entry in entries:
                if entry.dask_future is not None:
                    _try(f"{entry.symbol}: releasing the fit", entry.dask_future.release)
                self._resolve(entry, cancel=True)
        else:
            self.wait_idle(self._deadline_s)
        self._dispatch.shutdown(wait=True)
        self._disconnect()

    # --- connecting ----------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The connected `distributed.Client`, or None (for tests and benchmarks)."""
        return self._client

    def _connect_quietly(self) -> None:
        with contextlib.suppress(TrainingError):
            self._ensure_client()

    def _ensure_client(self) -> Any:
        """The connected client (connecting if needed). Dispatch thread only.

        Raises TrainingError (without a symbol) naming the scheduler and the cause.
        """
        client = self._client
        if client is not None and client.status == "running":
            return client
        self._disconnect()
        try:
            from distributed import Client

            _quiet_dask_logs()
            if self.scheduler:
                client = Client(
                    self.scheduler, timeout=self._connect_timeout_s, set_as_default=False
                )
            else:
                self._cluster = self._cluster or local_cluster(self._workers)
                client = Client(self._cluster, set_as_default=False)
        except Exception as exc:
            reason = f"Dask scheduler {self._where} unreachable: {type(exc).__name__}: {exc}"
            if self._outage is None:
                log.warning(
                    "%s; fits fail until it answers, and coverage retries them on its schedule",
                    reason,
                )
            self._outage = reason
            raise TrainingError(reason) from exc
        self._client = client
        self._outage = None
        workers = len(client.nthreads())
        log.info(
            "Dask scheduler %s connected: %d workers; fits need scikit-learn %s, numpy %s.x, "
            "Python %s and model code %s",
            self._where,
            workers,
            self._versions["scikit-learn"],
            self._versions["numpy"].split(".")[0],
            self._versions["python"],
            self._versions["model code"],
        )
        return client

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _try("closing the Dask client", client.close, timeout=self._connect_timeout_s)
        if self._closed:
            cluster, self._cluster = self._cluster, None
            if cluster is not None:
                _try("closing the local Dask cluster", cluster.close)

    # --- handing jobs over ---------------------------------------------------------------

    def _pump(self) -> None:
        """Hand waiting jobs over while fewer than max_in_flight run. Dispatch thread only."""
        while True:
            with self._cond:
                if not self._waiting or len(self._running) >= self._max_in_flight:
                    return
            try:
                client = self._ensure_client()
            except TrainingError as exc:
                with self._cond:
                    failed = list(self._waiting)
                for entry in failed:
                    self._resolve(entry, error=TrainingError(f"{entry.symbol}: {exc}"))
                return
            with self._cond:
                if not self._waiting:
                    return
                entry = self._waiting.popleft()
                self._running[entry.key] = entry
                payload, entry.payload = entry.payload, None
            if payload is None:  # cancelled by shutdown meanwhile
                continue
            try:
                dask_future = client.submit(
                    fit_on_worker, payload, key=entry.key, pure=False, retries=0
                )
            except Exception as exc:
                self._resolve(
                    entry,
                    error=TrainingError(
                        f"{entry.symbol}: cannot hand the fit to Dask scheduler {self._where}: "
                        f"{type(exc).__name__}: {exc}"
                    ),
                )
                continue
            entry.dask_future = dask_future
            timer = threading.Timer(self._deadline_s, self._expire, args=(entry,))
            timer.daemon = True
            entry.timer = timer
            timer.start()
            dask_future.add_done_callback(functools.partial(self._on_done, entry))

    def _on_done(self, entry: _Entry, dask_future: Any) -> None:
        """Dask's callback thread: turn the task's outcome into the trainer's result."""
        if not self._claim(entry):
            return  # past its deadline or cancelled: the trainer has moved on
        try:
            if dask_future.status == "finished":
                # bounded: the fit is done, but its bytes still come from a worker that may stall
                fitted: Fitted = dask_future.result(timeout=self._connect_timeout_s)
                # Taken: the cluster may forget it (else a lost worker makes Dask recompute it).
                dask_future.release()
                artifacts.write_staged_files(entry.staging_dir, fitted.files)
                result = msgspec.structs.replace(fitted.result, staging_dir=entry.staging_dir)
                self._complete(entry, result=result)
                return
            error = self._explain(entry, dask_future)
            dask_future.release()
        except Exception as exc:  # a broken result or a local disk error: the trainer's failure
            error = exc
        self._complete(entry, error=error)

    def _explain(self, entry: _Entry, dask_future: Any) -> BaseException:
        from distributed.scheduler import KilledWorker

        if dask_future.status == "cancelled":
            return TrainingError(
                f"{entry.symbol}: the fit was lost: Dask scheduler {self._where} cancelled it "
                "or the connection to it broke"
            )
        exc = dask_future.exception(timeout=self._connect_timeout_s)
        if isinstance(exc, KilledWorker):
            return TrainingError(
                f"{entry.symbol}: Dask worker {exc.last_worker.address} died mid-fit "
                f"(tried on {exc.allowed_failures + 1} worker(s))"
            )
        if isinstance(exc, TrainingError | artifacts.ArtifactError):
            return exc  # the fit's own verdict, raised on the worker
        # Anything else is the cluster's, often several lines long: one line for the log.
        text = " ".join(str(exc).split())
        if "deserializ" in text:
            text = (
                "the cluster cannot load the fit: its scheduler and workers need the bot's "
                f"code and libraries (docs/distributed.md) ({text[:200]})"
            )
        return TrainingError(f"{entry.symbol}: Dask: {type(exc).__name__}: {text[:400]}")

    def _expire(self, entry: _Entry) -> None:
        """Timer thread: the fit is past its deadline; the worker's result will be ignored."""
        if not self._claim(entry):
            return
        self._complete(
            entry,
            error=TrainingError(
                f"{entry.symbol}: fit exceeded its {self._deadline_s:g} s deadline on "
                f"Dask scheduler {self._where}; abandoned"
            ),
        )
        if entry.dask_future is not None:
            # Dask cannot interrupt a running function: the worker finishes it and drops it.
            _try(f"{entry.symbol}: cancelling the late fit", entry.dask_future.cancel)

    def _resolve(self, entry: _Entry, **outcome: Any) -> None:
        if self._claim(entry):
            self._complete(entry, **outcome)

    def _claim(self, entry: _Entry) -> bool:
        """Take the job out of the queue or its slot; False if something else already did."""
        with self._cond:
            if entry.done:
                return False
            entry.done = True
            entry.payload = None
            if entry.timer is not None:
                entry.timer.cancel()
            self._running.pop(entry.key, None)
            with contextlib.suppress(ValueError):
                self._waiting.remove(entry)
            return True

    def _complete(
        self,
        entry: _Entry,
        *,
        result: TrainResult | None = None,
        error: BaseException | None = None,
        cancel: bool = False,
    ) -> None:
        """Complete the trainer's future, then count the job as finished (so that wait_idle
        returning means every future is complete), then hand over the next waiting job."""
        if cancel:
            entry.outer.cancel()
        elif error is not None:
            entry.outer.set_exception(error)
        else:
            entry.outer.set_result(result)  # type: ignore[arg-type]
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()
        with contextlib.suppress(RuntimeError):  # the dispatcher has shut down
            self._dispatch.submit(self._pump)
