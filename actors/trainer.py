"""TrainerActor: trains one symbol, then stops. Exists only while its symbol trains.

Started by the coverage actor through the `TrainerDirectory`, whose entry for the
symbol is the guard against a second trainer. Accepts:
- `StartTraining` (sent to itself at start): download the history into the
  candle cache (resuming; progress as a bar on a terminal, one line when it is
  ready), then submit the fit to the worker pool and return at once: the actor
  thread never runs the fit. Once the System is stopping (`Runtime.stopping`) a
  download leaves off at its next page and the trainer stops without an outcome.
- `FitFinished` (from the pool's completion callback): ask the store to publish
  a model that passed the promotion gate, or to keep a rejected one as rejected.
- `ModelPublished` / `PublishFailed` / `RejectedKept` (store).
  No answer from the store to either request within PUBLISH_REPLY_S (`PublishOverdue`,
  its own one-shot timer) fails the training with that reason.

Reports `TrainingSucceeded`, `TrainingRejected` or `TrainingFailed` to the
coverage actor and stops; publishes the gate's verdict as `GateDecided`.
An exception in any handler also ends as `TrainingFailed` (trainers are
temporary: the supervisor never restarts them).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import pykka

from actors.base import BaseActor, Runtime, Topic
from actors.clock import Clock, Mailbox
from actors.messages import (
    FitFinished,
    GateDecided,
    KeepRejected,
    ModelPublished,
    PublishFailed,
    PublishModel,
    PublishOverdue,
    RejectedKept,
    StartTraining,
    TrainerFinished,
    TrainerStarted,
    TrainingFailed,
    TrainingRejected,
    TrainingSucceeded,
)
from config.settings import TrainingSettings
from core.progress import ProgressSteps
from core.timeframes import timeframe_ms
from exchange.port import ExchangePort
from exchange.types import ExchangeError
from models import artifacts
from models.pool import TrainingBackend
from models.training import TrainingError, TrainJob, TrainParams, TrainResult, UntrainableError
from storage.candles import CandleCache, FloatArray, download

# Publishing is a folder rename and one model load (milliseconds to a second): no answer in
# two minutes means the store died with the request or is stuck, and the trainer must not
# wait for ever (its symbol would stay TRAINING).
PUBLISH_REPLY_S = 120.0


class TrainerActor(BaseActor):
    def __init__(
        self,
        *,
        symbol: str,
        clock: Clock,
        exchange: ExchangePort,
        cache: CandleCache,
        pool: TrainingBackend,
        store: Mailbox,
        coverage: Mailbox,
        models_dir: Path,
        timeframe: str,
        training: TrainingSettings,
        params: TrainParams,
        on_exit: Callable[[BaseActor], None],
        supervisor: Mailbox | None = None,
        events: Topic | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        super().__init__(f"trainer:{symbol}", clock, supervisor, events, runtime)
        self.symbol = symbol
        self.exchange = exchange
        self.cache = cache
        self.pool = pool
        self.store = store
        self.coverage = coverage
        self.models_dir = Path(models_dir)
        self.timeframe = timeframe
        self.training = training
        self.params = params  # labels, walk-forward trading rules and the promotion gate
        self.on_exit = on_exit
        self.finished = False
        self.staging: str | None = None  # removed unless the store published it
        self.fit_seconds = 0.0
        self.metrics: dict[str, float] = {}
        self.trained_at_ms = 0
        self.rejection: FitFinished | None = None  # the fit the promotion gate refused

    def started(self) -> None:
        self.publish(TrainerStarted(at=self.clock.now(), symbol=self.symbol))
        self.actor_ref.tell(StartTraining())

    def receive(self, message: Any) -> Any:
        match message:
            case StartTraining():
                self._start()
            case FitFinished():
                self._on_fit(message)
            case ModelPublished(version=version):
                self.staging = None  # it is the published version now
                self.log.debug("%s: training done, model %s in use", self.symbol, version)
                self.publish(
                    GateDecided(
                        at=self.clock.now(), symbol=self.symbol, promoted=True, version=version
                    )
                )
                self._finish(
                    TrainingSucceeded(
                        symbol=self.symbol,
                        version=version,
                        fit_seconds=self.fit_seconds,
                        metrics=self.metrics,
                    ),
                    ok=True,
                    detail=version,
                )
            case PublishFailed(error=error):
                self._fail(error)
            case RejectedKept(path=path):
                self._rejected(path)
            case PublishOverdue():
                self._fail(f"the model store did not answer within {PUBLISH_REPLY_S:.0f} s")
            case _:
                return super().receive(message)
        return None

    def _start(self) -> None:
        tf_ms = timeframe_ms(self.timeframe)
        now_ms = int(self.clock.now() * 1000)
        self.trained_at_ms = now_ms
        until_ms = now_ms - now_ms % tf_ms  # open time of the candle still forming
        since_ms = until_ms - int(self.training.window_days * 86_400_000)
        try:
            listed = self.exchange.history_start_ms(self.symbol)
            if listed is not None:
                since_ms = max(since_ms, listed)
            candles = self._download(since_ms, until_ms)
        except _Stopping:
            # the cache keeps the pages already stored: the next start resumes from there
            self.log.debug("%s: history download left off: the bot is stopping", self.symbol)
            self._abandon()
            return
        except (ExchangeError, OSError) as exc:
            self._fail(f"history download failed: {exc}")
            return
        if self.runtime.stopping.is_set():
            self._abandon()
            return
        staging = artifacts.new_staging_dir(self.models_dir)
        self.staging = str(staging)
        job = TrainJob(
            symbol=self.symbol,
            timeframe=self.timeframe,
            candles=candles,
            staging_dir=str(staging),
            params=self.params,
            trained_at_ms=now_ms,
        )
        self.log.debug(
            "%s: fitting on %s candles in a worker process", self.symbol, f"{len(candles):,}"
        )
        me, log, symbol = self.actor_ref, self.log, self.symbol
        background = self.runtime.background
        background.begin()
        try:
            future = self.pool.submit(job)
        except Exception:
            background.end()
            raise

        def done(fut: concurrent.futures.Future[TrainResult]) -> None:
            # Runs in the pool's thread: nothing may escape it (the pool would only log it).
            try:
                me.tell(_fit_finished(fut, str(staging)))
            except pykka.ActorDeadError:  # stopped meanwhile (the bot is stopping)
                log.debug("%s: fit finished after its trainer stopped; result dropped", symbol)
            except Exception as exc:
                log.error("%s: fit result not delivered: %s: %s", symbol, type(exc).__name__, exc)
            finally:
                background.end()

        future.add_done_callback(done)

    def _download(self, since_ms: int, until_ms: int) -> FloatArray:
        """The history into the candle cache, with progress for the terminal's bar and one
        line when it is ready. Raises `_Stopping` at the next page once the bot stops."""
        tf_ms = timeframe_ms(self.timeframe)
        expected = max(1, (until_ms - since_ms) // tf_ms)
        self.log.debug(
            "%s: training started: downloading %.1f days of %s candles (%s)",
            self.symbol,
            (until_ms - since_ms) / 86_400_000,
            self.timeframe,
            f"{expected:,}",
        )
        progress = ProgressSteps(
            self.log, self.symbol, expected, what="history download", unit="candles"
        )
        stopping = self.runtime.stopping

        def step(done: int, total: int) -> None:
            if stopping.is_set():
                raise _Stopping
            progress(done, total)

        began = time.monotonic()  # how long the work took, for people: wall time
        try:
            candles = download(
                self.cache,
                self.exchange,
                self.symbol,
                self.timeframe,
                since_ms,
                until_ms,
                progress=step,
            )
        finally:
            progress.end()
        self.log.info(
            "%s: history ready: %s candles (%.1f days of %s), %s downloaded in %.1f s",
            self.symbol,
            f"{len(candles):,}",
            len(candles) * tf_ms / 86_400_000,
            self.timeframe,
            f"{progress.last_done:,}",
            time.monotonic() - began,
        )
        return candles

    def _on_fit(self, message: FitFinished) -> None:
        if message.error is not None:
            self._fail(message.error, untrainable=message.untrainable)
            return
        self.fit_seconds = message.fit_seconds
        self.metrics = message.metrics
        if not message.promoted:
            self.rejection = message
            self.log.debug(
                "%s: fit finished in %.1f s on %s rows; the model has no edge after costs (%s)",
                self.symbol,
                message.fit_seconds,
                f"{message.rows:,}",
                "; ".join(message.gate_reasons) or "rejected by the promotion gate",
            )
            self._ask_store(
                KeepRejected(
                    symbol=self.symbol,
                    staging_dir=message.staging_dir,
                    reasons=message.gate_reasons,
                    metrics=message.metrics,
                    trained_at_ms=self.trained_at_ms,
                    window_end_ms=message.window_end_ms,
                    reply_to=self.actor_ref,
                )
            )
            return
        self.log.debug(
            "%s: fit finished in %.1f s on %s rows; publishing",
            self.symbol,
            message.fit_seconds,
            f"{message.rows:,}",
        )
        self._ask_store(
            PublishModel(
                symbol=self.symbol, staging_dir=message.staging_dir, reply_to=self.actor_ref
            )
        )

    def _ask_store(self, request: PublishModel | KeepRejected) -> None:
        """Send the store a request whose answer ends this training, with a deadline: no
        answer within PUBLISH_REPLY_S (`PublishOverdue`) fails the training."""
        self.store.tell(request)
        overdue = self.clock.schedule_once(
            self.clock.now() + PUBLISH_REPLY_S, self.actor_ref, PublishOverdue()
        )
        self._timers.append(overdue)  # cancelled when the trainer stops

    def _rejected(self, kept_at: str | None) -> None:
        fit = self.rejection
        if fit is None:  # pragma: no cover - the store only answers a KeepRejected
            self._fail("the store kept a model that was not rejected")
            return
        if kept_at is not None:
            self.staging = None  # moved by the store
        reasons = fit.gate_reasons
        window_end = (fit.window_end_ms or self.trained_at_ms) / 1000
        self.publish(
            GateDecided(
                at=self.clock.now(),
                symbol=self.symbol,
                promoted=False,
                reasons=reasons,
                window_end=window_end,
            )
        )
        outcome = TrainingRejected(
            symbol=self.symbol,
            reasons=reasons,
            trained_at=self.trained_at_ms / 1000,
            window_end=window_end,
            fit_seconds=fit.fit_seconds,
            metrics=fit.metrics,
            kept_at=kept_at,
        )
        detail = "rejected: " + ("; ".join(reasons) or "no edge")
        self._finish(outcome, ok=True, detail=detail)

    def _fail(self, error: str, untrainable: bool = False) -> None:
        error = error.removeprefix(f"{self.symbol}: ")
        # data that cannot give a model is warned about by the coverage actor, once
        level = logging.DEBUG if untrainable else logging.WARNING
        self.log.log(level, "%s: training failed: %s", self.symbol, error)
        failed = TrainingFailed(symbol=self.symbol, error=error, untrainable=untrainable)
        self._finish(failed, ok=False, detail=error)

    def _abandon(self) -> None:
        """Stop without an outcome: the bot is stopping (its coverage actor already stopped;
        at the next start the symbol is checked afresh)."""
        self.finished = True
        self.on_exit(self)
        self.stop()

    def _finish(
        self,
        outcome: TrainingSucceeded | TrainingRejected | TrainingFailed,
        ok: bool,
        detail: str,
    ) -> None:
        if self.finished:
            return
        self.finished = True
        if self.staging is not None:
            artifacts.discard_staging(self.staging)
        self.on_exit(self)  # leave the directory first: coverage may start a new trainer
        self.coverage.tell(outcome)
        self.publish(TrainerFinished(at=self.clock.now(), symbol=self.symbol, ok=ok, detail=detail))
        self.stop()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        super().on_failure(exception_type, exception_value, traceback)
        if not self.finished:
            self.finished = True
            self.on_exit(self)
            error = f"trainer crashed: {type(exception_value).__name__}: {exception_value}"
            self.coverage.tell(TrainingFailed(symbol=self.symbol, error=error))
            self.publish(
                TrainerFinished(at=self.clock.now(), symbol=self.symbol, ok=False, detail=error)
            )


class _Stopping(Exception):
    """Raised from a download's progress step once the System is stopping."""


def _fit_finished(future: concurrent.futures.Future[TrainResult], staging_dir: str) -> FitFinished:
    try:
        result = future.result()
    except Exception as exc:
        # A TrainingError already says what is wrong with the data; anything else is a bug
        # or a broken worker, named by its type.
        error = str(exc) if isinstance(exc, TrainingError) else f"{type(exc).__name__}: {exc}"
        untrainable = isinstance(exc, UntrainableError)
        return FitFinished(staging_dir=staging_dir, error=error, untrainable=untrainable)
    return FitFinished(
        staging_dir=result.staging_dir,
        fit_seconds=result.fit_seconds,
        rows=result.rows,
        metrics=dict(result.metrics),
        promoted=result.promoted,
        gate_reasons=tuple(result.gate_reasons),
        window_end_ms=result.window_end_ms,
    )
