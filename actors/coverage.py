"""CoverageActor: the only place that decides what state each symbol is in.

One module over 500 lines because it is one actor: its handlers share the symbol
records, the interval gate and the trainer directory; the transitions themselves
are the pure `policy.lifecycle.step`.

Accepts:
- `CoverageTick` (its own clock timer, every coverage.interval_s): evaluate every
  symbol. Gated: an evaluation less than interval_s after the previous one is
  skipped, whoever sent the tick.
- `UniverseTick` (its own timer, every universe.refresh_s) and `RefreshUniverse`
  (admin): refresh the universe, then evaluate. `RefreshUniverse` replies a
  `CommandResult` (a `Later`, once the lookup is back) saying what happened:
  refreshed (with the changes), failed (why), or skipped (the model store has not
  answered yet). It goes the periodic refresh's way, outside the mailbox, one lookup
  at a time: asked while a refresh runs, it is answered by that one; while a lookup
  of history starts only runs, the refresh follows it.
- `ModelsUpdated` (model store): symbols a published model covers become ACTIVE.
  The first one after start (the reply to its `Subscribe`) triggers the startup
  refresh and evaluation, so nothing is trained that a model on disk covers.
- `TrainingSucceeded`, `TrainingFailed` (trainers); `TrainingRejected`: the
  promotion gate refused the model, the symbol goes NO_EDGE (or stays ACTIVE on a
  young model) and is retrained only after promotion.retry_after_days of new
  candles or on an admin retrain.
- `BlockSymbol`, `UnblockSymbol`, `RetrainSymbol` (admin): reply `CommandResult`.
- `GetSymbols` (ask): reply `SymbolStates`.
- `Subscribe`: the subscriber gets `SymbolStates` now and after every change.

Exchange lookups (the universe's markets and tickers, the history start of each
symbol not seen yet) run outside the mailbox (`BaseActor.run_outside`, on the
downloads client): the evaluation that needs them follows when `UniverseFetched`
comes back, so a slow exchange never holds up a `GetSymbols` or a `Subscribe`
(the trader's first snapshot after a restart), an operator's `RefreshUniverse`
included.

Sends: `SymbolStates` to subscribers, `Subscribe` to the store, events
(`SymbolTransition`, `CoverageChecked`, `UniverseRefreshed`) on the topic, and
starts trainers through the `TrainerDirectory` (never two for one symbol).

With a `SymbolStore` (the database), every record is saved as soon as it
changes and loaded at start, so a restarted coverage actor (or bot) keeps each
symbol's state, reason, eligibility time, attempts and backoff: a blocked symbol
stays blocked with its reason. Each training is recorded as an attempt; one left
running by a previous process (its trainer is gone) is closed as abandoned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from actors.base import BaseActor, Later, Runtime, Topic, TrainerDirectory
from actors.clock import Clock, Mailbox
from actors.messages import (
    BlockSymbol,
    CommandResult,
    CoverageChecked,
    CoverageTick,
    CoverageTrigger,
    GetSymbols,
    ModelsUpdated,
    RefreshUniverse,
    RetrainSymbol,
    Subscribe,
    SymbolStates,
    SymbolTransition,
    TrainingFailed,
    TrainingRejected,
    TrainingSucceeded,
    UnblockSymbol,
    UniverseFetched,
    UniverseRefreshed,
    UniverseTick,
)
from config.settings import (
    CoverageSettings,
    PromotionSettings,
    TrainingSettings,
    UniverseSettings,
)
from exchange.port import ExchangePort
from exchange.types import ExchangeError, TransientExchangeError
from policy import cadence, lifecycle
from policy.lifecycle import (
    Facts,
    LifecyclePolicy,
    Step,
    SymbolRecord,
    SymbolState,
)
from policy.universe import select_universe
from storage.db import SymbolStore


class CoverageActor(BaseActor):
    def __init__(
        self,
        *,
        clock: Clock,
        exchange: ExchangePort,
        trainers: TrainerDirectory,
        store: Mailbox,
        coverage: CoverageSettings,
        universe: UniverseSettings,
        training: TrainingSettings,
        quote: str,
        subscribers: dict[str, Mailbox] | None = None,
        supervisor: Mailbox | None = None,
        events: Topic | None = None,
        runtime: Runtime | None = None,
        initial_records: Iterable[SymbolRecord] = (),
        symbol_store: SymbolStore | None = None,
        promotion: PromotionSettings | None = None,
    ) -> None:
        super().__init__("coverage", clock, supervisor, events, runtime)
        self.exchange = exchange
        self.trainers = trainers
        self.store = store
        self.settings = coverage
        self.universe_settings = universe
        self.quote = quote
        self.subscribers = Topic(subscribers)
        self.policy = LifecyclePolicy(
            min_history_days=coverage.min_history_days,
            max_attempts=training.max_attempts,
            retry_base_s=training.retry_base_s,
            retry_max_s=training.retry_max_s,
            max_model_age_s=coverage.max_model_age_s,
            retry_after_s=(promotion or PromotionSettings()).retry_after_days * lifecycle.DAY_S,
        )
        self.records: dict[str, SymbolRecord] = {r.symbol: r for r in initial_records}
        self.store_db = symbol_store
        self.universe: set[str] = set()
        self.listed_at: dict[str, float] = {}  # earliest candle time; never changes once known
        self.models_known = False
        self.universe_known = False  # a refresh has succeeded at least once
        self.universe_failed = False  # the last refresh failed: retry on every coverage tick
        self.last_check_at: float | None = None
        self.checks = 0
        self.looking_up = False  # a lookup runs outside the mailbox: no second one meanwhile
        # admin refreshes waiting for the next refresh's outcome, with the universe they saw
        self.refresh_asked: list[tuple[Later, set[str]]] = []

    # --- lifecycle ------------------------------------------------------------------

    def started(self) -> None:
        self.log.info(
            "Training/coverage checks every %ds, universe refresh every %ds",
            self.settings.interval_s,
            self.universe_settings.refresh_s,
        )
        self._restore()
        self.every(self.settings.interval_s, CoverageTick)
        # static lists are refreshed too: a listed symbol may open for trading later
        self.every(self.universe_settings.refresh_s, UniverseTick)
        self.store.tell(Subscribe(name="coverage", subscriber=self.actor_ref))

    def receive(self, message: Any) -> Any:
        match message:
            case CoverageTick():
                self._on_coverage_tick()
            case UniverseTick():
                if self.models_known:
                    self._look_up(CoverageTrigger.UNIVERSE, refresh=True)
            case UniverseFetched():
                self.looking_up = False
                self._on_fetched(message)
                self._answer_refreshes(message)
            case RefreshUniverse():
                return self._admin_refresh()
            case ModelsUpdated():
                self._on_models(message)
            case TrainingSucceeded(symbol=symbol, version=version, fit_seconds=fit_s):
                if self.store_db is not None:
                    self.store_db.attempt_finished(
                        symbol, self.clock.now(), ok=True, version=version, fit_seconds=fit_s
                    )
                self._apply(symbol, lifecycle.TrainingOutcome(now=self.clock.now(), ok=True))
                self._broadcast()
            case TrainingRejected():
                self._on_rejected(message)
            case TrainingFailed(symbol=symbol, error=error, untrainable=untrainable):
                if self.store_db is not None:
                    self.store_db.attempt_finished(symbol, self.clock.now(), ok=False, error=error)
                before = self.records.get(symbol)
                if untrainable and (before is None or before.attempts == 0):
                    # said once per series of failures; the retries that follow (on more data,
                    # as the lifecycle says) only show as transitions
                    self.log.warning(
                        "%s: %s; it is retried up to %d times as new data comes in, "
                        "without another warning",
                        symbol,
                        error,
                        self.policy.max_attempts - 1,
                    )
                event = lifecycle.TrainingOutcome(now=self.clock.now(), ok=False, error=error)
                self._apply(symbol, event)
                self._broadcast()
            case BlockSymbol(symbol=symbol, reason=reason):
                return self._command(symbol, lifecycle.ManualBlock(self.clock.now(), reason))
            case UnblockSymbol(symbol=symbol):
                result = self._command(symbol, lifecycle.ManualUnblock(self.clock.now()))
                if result.ok:  # re-decide at once rather than at the next tick
                    self._apply(symbol, lifecycle.Evaluate(self._facts(symbol)))
                    self._broadcast()
                return result
            case RetrainSymbol(symbol=symbol):
                return self._command(symbol, lifecycle.ManualRetrain(self._facts(symbol)))
            case GetSymbols():
                return self._snapshot()
            case Subscribe(name=name, subscriber=subscriber):
                self.subscribers.subscribe(name, subscriber)
                subscriber.tell(self._snapshot())
            case _:
                return super().receive(message)
        return None

    # --- persistence ----------------------------------------------------------------------

    def _restore(self) -> None:
        """Load the records a previous incarnation saved; close attempts nobody runs any more."""
        if self.store_db is None:
            return
        for fields in self.store_db.load():  # stored in encoded form: see storage.db.symbols
            record = msgspec.convert(fields, SymbolRecord)
            self.records[record.symbol] = record
        running = set(self.trainers.symbols())
        abandoned = self.store_db.abandon_unfinished(
            self.clock.now(), keep=running, reason="the bot stopped while it ran"
        )
        if not self.records:
            return
        counts: dict[str, int] = {}
        for record in self.records.values():
            counts[record.state] = counts.get(record.state, 0) + 1
        self.log.info(
            "Symbol states restored: %d symbols (%s)%s",
            len(self.records),
            ", ".join(f"{n} {state}" for state, n in sorted(counts.items())),
            f"; {len(abandoned)} unfinished trainings abandoned ({', '.join(abandoned)})"
            if abandoned
            else "",
        )
        for record in sorted(self.records.values(), key=lambda r: r.symbol):
            if lifecycle.is_blocked(record.state) and record.state is not SymbolState.NEW:
                self.log.info("%s: still %s (%s)", record.symbol, record.state, record.reason)

    def _save(self, record: SymbolRecord) -> None:
        if self.store_db is not None:
            self.store_db.save(msgspec.to_builtins(record))

    # --- handlers ----------------------------------------------------------------------

    def _on_coverage_tick(self) -> None:
        if not self.models_known:
            self.log.warning("Coverage check skipped: still waiting for the model store")
            return
        now = self.clock.now()
        last = self.last_check_at
        if last is not None and cadence.too_soon(last, now, self.settings.interval_s):
            self.log.debug(
                "Coverage check skipped: last one %.0f s ago < %d s interval",
                now - last,
                self.settings.interval_s,
            )
            return
        if self.looking_up:  # the evaluation that follows the lookup in flight stands for it
            self.log.debug("Coverage check skipped: a lookup on the exchange is in flight")
            return
        # the exchange was down at the last refresh: do not wait an hour; a symbol whose
        # history start is unknown: look it up again
        refresh = self.universe_failed
        if refresh or self._starts_unknown():
            self._look_up(CoverageTrigger.TICK, refresh=refresh)
        else:
            self._evaluate_all(CoverageTrigger.TICK)

    def _on_rejected(self, message: TrainingRejected) -> None:
        now = self.clock.now()
        if self.store_db is not None:
            self.store_db.attempt_finished(
                message.symbol,
                now,
                ok=True,
                rejected=True,
                error="; ".join(message.reasons) or None,
                fit_seconds=message.fit_seconds,
            )
        event = lifecycle.ModelRejected(
            now=now,
            trained_at=message.trained_at,
            window_end=message.window_end,
            reasons=message.reasons,
        )
        self._apply(message.symbol, event)
        self._broadcast()

    def _on_models(self, message: ModelsUpdated) -> None:
        now = self.clock.now()
        lost = [
            (symbol, record.model_version)
            for symbol, record in sorted(self.records.items())
            if record.model_version is not None and symbol not in message.models
        ]
        for symbol, version in lost:
            self._apply(symbol, lifecycle.ModelLost(now, version))
        for symbol, model in message.models.items():
            record = self.records.get(symbol)
            if record is None or record.model_version == model.version:
                continue
            trained_at = model.manifest.trained_at_ms / 1000
            self._apply(symbol, lifecycle.ModelCovered(now, model.version, trained_at))
        # models of symbols not seen yet: remember them so the first evaluation finds them
        for symbol, model in message.models.items():
            if symbol not in self.records:
                self.records[symbol] = SymbolRecord(
                    symbol=symbol,
                    since=now,
                    model_version=model.version,
                    model_trained_at=model.manifest.trained_at_ms / 1000,
                    state=SymbolState.NEW,
                    reason="a model covers it",
                )
                self._save(self.records[symbol])
        if not self.models_known:
            self.models_known = True
            self._look_up(CoverageTrigger.STARTUP, refresh=True)
        else:
            for symbol, _ in lost:  # decide at once (retrain) rather than at the next tick
                self._apply(symbol, lifecycle.Evaluate(self._facts(symbol)))
            self._broadcast()

    def _command(self, symbol: str, event: lifecycle.Event) -> CommandResult:
        if symbol not in self.records:
            return CommandResult(ok=False, detail=f"unknown symbol {symbol}")
        result = self._apply(symbol, event)
        self._broadcast()
        if result.refused:
            return CommandResult(ok=False, detail=result.refused)
        return CommandResult(ok=True, detail=result.note or f"{symbol}: {result.record.state}")

    # --- the work --------------------------------------------------------------------

    def _admin_refresh(self) -> CommandResult | Later:
        """An operator's refresh: the periodic refresh's lookup (one at a time, outside the
        mailbox), answered with what happened once it is back."""
        if not self.models_known:
            return CommandResult(
                ok=False,
                detail="skipped: the model store has not answered yet (the universe is "
                "refreshed as soon as it has)",
            )
        later = self.reply_later()
        self.refresh_asked.append((later, set(self.universe)))
        if not self.looking_up:
            self._look_up(CoverageTrigger.UNIVERSE, refresh=True)
        # else: the lookup in flight answers it if it refreshes, or is followed by a refresh
        return later

    def _answer_refreshes(self, fetched: UniverseFetched) -> None:
        """Tell the admins waiting what the refresh found; if the lookup just done was not a
        refresh, start the one they asked for."""
        if not self.refresh_asked:
            return
        if not fetched.refreshed:
            self._look_up(CoverageTrigger.UNIVERSE, refresh=True)
            return
        asked, self.refresh_asked = self.refresh_asked, []
        for later, before in asked:
            later.answer(refresh_result(fetched, before, self.universe, len(self.records)))

    def _starts_unknown(self) -> bool:
        return any(symbol not in self.listed_at for symbol in self.universe)

    def _look_up(self, trigger: CoverageTrigger, refresh: bool) -> None:
        """Ask the exchange outside the mailbox; the evaluation follows on `UniverseFetched`."""
        if self.looking_up:
            self.log.info("Coverage check (%s) skipped: the last lookup is still running", trigger)
            return
        self.looking_up = True
        job = self._lookup_job(trigger, refresh)
        self.run_outside(job, lambda fetched: fetched)

    def _lookup_job(self, trigger: CoverageTrigger, refresh: bool) -> Callable[[], UniverseFetched]:
        """A job (touching no actor state) fetching the universe if `refresh`, then the
        history start of every universe symbol whose listing is not known yet."""
        exchange, settings, quote = self.exchange, self.universe_settings, self.quote
        universe, known = set(self.universe), set(self.listed_at)

        def job() -> UniverseFetched:
            error: str | None = None
            symbols = universe
            if refresh:
                try:
                    markets = exchange.load_markets()
                    tickers = exchange.fetch_tickers() if settings.mode == "auto" else {}
                except ExchangeError as exc:
                    error = str(exc)
                else:
                    symbols = set(
                        select_universe(
                            markets,
                            tickers,
                            quote=quote,
                            top_n=settings.top_n,
                            blacklist=settings.blacklist,
                            static=settings.symbols if settings.mode == "static" else (),
                        )
                    )
            starts: dict[str, int | None] = {}
            start_errors: dict[str, str] = {}
            for symbol in sorted(symbols - known):
                try:
                    starts[symbol] = exchange.history_start_ms(symbol)
                except ExchangeError as exc:
                    start_errors[symbol] = str(exc)
                    if isinstance(exc, TransientExchangeError):  # not answering: ask the
                        break  # others at the next check rather than wait on each of them
            return UniverseFetched(
                trigger=trigger,
                refreshed=refresh,
                universe=tuple(sorted(symbols)),
                error=error,
                starts=starts,
                start_errors=start_errors,
            )

        return job

    def _on_fetched(self, fetched: UniverseFetched) -> None:
        if fetched.refreshed:
            if fetched.error is not None:
                self.universe_failed = True
                self.log.warning(
                    "Universe refresh failed, keeping %d symbols; retrying at the next coverage "
                    "check (every %ds): %s",
                    len(self.universe),
                    self.settings.interval_s,
                    fetched.error,
                )
            else:
                self._apply_universe(set(fetched.universe))
        for symbol, start_ms in fetched.starts.items():
            if start_ms is not None:
                self.listed_at[symbol] = start_ms / 1000
        for symbol, error in sorted(fetched.start_errors.items()):
            self.log.warning("%s: cannot read history start: %s", symbol, error)
        if fetched.error is not None and fetched.trigger is CoverageTrigger.UNIVERSE:
            return  # a universe check follows a refresh; the next tick evaluates (and retries)
        self._evaluate_all(fetched.trigger)

    def _apply_universe(self, fresh: set[str]) -> None:
        settings = self.universe_settings
        self.universe_failed = False
        self.universe_known = True
        added, removed = sorted(fresh - self.universe), sorted(self.universe - fresh)
        if settings.mode == "static":
            for missing in sorted(set(settings.symbols) - fresh):
                self.log.warning(
                    "%s: in universe.symbols but not an active market; ignored", missing
                )
        first = not self.universe
        self.universe = fresh
        if added or removed:
            self.log.info(
                "Universe %s: %d symbols%s%s",
                "loaded" if first else "refreshed",
                len(fresh),
                f", added {', '.join(added)}" if added and not first else "",
                f", removed {', '.join(removed)}" if removed else "",
            )
        self.publish(
            UniverseRefreshed(
                at=self.clock.now(), added=tuple(added), removed=tuple(removed), size=len(fresh)
            )
        )

    def _evaluate_all(self, trigger: CoverageTrigger) -> None:
        now = self.clock.now()
        if not self.universe_known:
            # Without a universe every symbol would look delisted and be RETIRED.
            self.log.warning("Coverage check (%s) skipped: the universe is not known yet", trigger)
            return
        self.last_check_at = now
        self.checks += 1
        for symbol in sorted(self.universe | set(self.records)):
            self._apply(symbol, lifecycle.Evaluate(self._facts(symbol)))
        states = [r.state for r in self.records.values()]
        active = sum(s is SymbolState.ACTIVE for s in states)
        blocked = sum(lifecycle.is_blocked(s) for s in states)
        self.log.debug("Coverage check (%s): %d active, %d blocked", trigger, active, blocked)
        self.publish(
            CoverageChecked(
                at=now, trigger=trigger, symbols=len(states), active=active, blocked=blocked
            )
        )
        self._broadcast()

    def _facts(self, symbol: str) -> Facts:
        return Facts(
            now=self.clock.now(),
            in_universe=symbol in self.universe,
            listed_at=self._listed_at(symbol) if symbol in self.universe else None,
            trainer_running=self.trainers.running(symbol),
        )

    def _listed_at(self, symbol: str) -> float | None:
        """The symbol's first candle time, if looked up (never asks the exchange here: the
        lookups run outside the mailbox, and an unknown one is asked at the next check)."""
        return self.listed_at.get(symbol)

    def _apply(self, symbol: str, event: lifecycle.Event) -> Step:
        known = self.records.get(symbol)
        record = known or SymbolRecord(symbol=symbol, since=self.clock.now())
        result = lifecycle.step(record, event, self.policy)
        self.records[symbol] = result.record
        if known is None or result.record != known:
            self._save(result.record)
        if result.note:
            self.log.info("%s", result.note)
        if result.record.state != record.state:
            self.publish(
                SymbolTransition(
                    at=self.clock.now(),
                    symbol=symbol,
                    old=record.state,
                    new=result.record.state,
                    reason=result.record.reason,
                )
            )
        if result.start_training:
            if self.trainers.start(symbol):
                self.log.debug("%s: trainer started", symbol)
                if self.store_db is not None:
                    self.store_db.attempt_started(symbol, self.clock.now())
            else:
                self.log.info("%s: already training; no second trainer", symbol)
        return result

    def _snapshot(self) -> SymbolStates:
        return SymbolStates(records=tuple(self.records[s] for s in sorted(self.records)))

    def _broadcast(self) -> None:
        self.subscribers.publish(self._snapshot())


def refresh_result(
    fetched: UniverseFetched, before: set[str], after: set[str], symbols: int
) -> CommandResult:
    """The answer to an admin refresh: the universe's changes since `before`, or the error."""
    if fetched.error is not None:
        return CommandResult(
            ok=False,
            detail=f"universe refresh failed, kept {len(after)} symbols: {fetched.error}",
        )
    added, removed = sorted(after - before), sorted(before - after)
    changes = "".join(
        f", {word} {', '.join(names)}"
        for word, names in (("added", added), ("removed", removed))
        if names
    )
    return CommandResult(
        ok=True, detail=f"universe refreshed and evaluated: {symbols} symbols{changes}"
    )
