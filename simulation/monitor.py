"""DESIGN.md's invariants, checked on a run's event stream while it runs.

Pure: no thread, no clock. The simulation feeds it every event of the system's
topic in publishing order; tests feed it event sequences directly.
"""

from __future__ import annotations

from collections.abc import Mapping

from actors.messages import (
    ActorRestarted,
    CoverageChecked,
    CoverageTrigger,
    Event,
    GateDecided,
    ModelsReloaded,
    OrderFailed,
    OrderPlaced,
    ReloadTrigger,
    SignalProduced,
    SymbolTransition,
    TrainerFinished,
    TrainerStarted,
    UniverseRefreshed,
)
from core.timefmt import format_utc
from policy import cadence
from policy.lifecycle import DAY_S, SymbolState
from policy.risk import Intent


class InvariantMonitor:
    """Checks DESIGN.md's invariants on the event stream, in the order events were published.

    Pure: feed it events with `observe`; it never blocks or reads a clock.
    `violations` are readable lines, each naming the invariant, the time and the symbol.
    `listed_at` (symbol -> time of its first candle) lets it check the history
    length itself rather than trust the coverage actor's states. `retry_after_s`
    (promotion.retry_after_days) lets it check invariant 8: a symbol whose model
    the gate rejected is not trained again before that much newer data exists
    (a simulation has no admin to ask for a retrain).
    """

    def __init__(
        self,
        *,
        coverage_interval_s: float,
        min_history_days: float | None = None,
        listed_at: Mapping[str, float] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.coverage_interval_s = coverage_interval_s
        self.retry_after_s = retry_after_s
        self.rejected: dict[str, float] = {}  # symbol -> window end of its last rejected model
        self.min_history_days = min_history_days
        self.listed_at = dict(listed_at or {})
        self.violations: list[str] = []
        self.duplicate_trainings = 0
        self.state: dict[str, str] = {}
        self.running: dict[str, float] = {}  # symbol -> when its trainer started
        self.last_check_at: float | None = None
        self.startup_checks = 0  # of the current coverage incarnation
        self.store_startups = 0  # of the current model store incarnation
        self.refreshed_at: float | None = None  # a universe refresh not yet followed by a check
        self.order_ids: set[str] = set()

    def _violate(self, at: float, text: str) -> None:
        self.violations.append(f"{format_utc(at, seconds=True)}: {text}")

    def observe(self, event: Event) -> None:
        match event:
            case SymbolTransition(symbol=symbol, new=new):
                self.state[symbol] = new
            case TrainerStarted():
                self._trainer_started(event)
            case TrainerFinished(symbol=symbol):
                self.running.pop(symbol, None)
            case UniverseRefreshed(at=at):
                self.refreshed_at = at
            case CoverageChecked():
                self._coverage_checked(event)
            case ModelsReloaded():
                self._models_reloaded(event)
            case SignalProduced(symbol=symbol, at=at):
                if self.state.get(symbol) != SymbolState.ACTIVE:
                    self._violate(
                        at,
                        f"{symbol}: signal produced while {self._state_of(symbol)} "
                        "(invariant 6: only ACTIVE symbols produce signals)",
                    )
            case OrderPlaced() | OrderFailed():
                self._order(event)
            case GateDecided(symbol=symbol, promoted=promoted, window_end=window_end):
                if promoted:
                    self.rejected.pop(symbol, None)
                elif window_end is not None:
                    self.rejected[symbol] = window_end
            case ActorRestarted(name=name):
                if name == "coverage":
                    self.startup_checks = 0
                elif name == "model_store":
                    self.store_startups = 0

    def _state_of(self, symbol: str) -> str:
        return self.state.get(symbol, "unknown to coverage")

    def _trainer_started(self, event: TrainerStarted) -> None:
        symbol, at = event.symbol, event.at
        if symbol in self.running:
            self.duplicate_trainings += 1
            self._violate(
                at,
                f"{symbol}: a second trainer started while the one started at "
                f"{format_utc(self.running[symbol], seconds=True)} still runs "
                "(invariant 1: one trainer per symbol)",
            )
        state = self.state.get(symbol)
        if state not in (SymbolState.TRAINING, SymbolState.ACTIVE):
            self._violate(
                at,
                f"{symbol}: trainer started while {self._state_of(symbol)} "
                "(only TRAINING, or ACTIVE retraining in the background, may train; "
                "invariant 3 for BLOCKED_HISTORY)",
            )
        listed = self.listed_at.get(symbol)
        if listed is not None and self.min_history_days is not None:
            days = (at - listed) / DAY_S
            if days < self.min_history_days:
                self._violate(
                    at,
                    f"{symbol}: trainer started with {days:.2f} days of history < "
                    f"{self.min_history_days:g} minimum (invariant 3)",
                )
        rejected = self.rejected.get(symbol)
        if rejected is not None and self.retry_after_s is not None:
            new_data = at - rejected
            if cadence.too_soon(rejected, at, self.retry_after_s):
                self._violate(
                    at,
                    f"{symbol}: trained again {new_data / 3600:.2f} h of candles after its "
                    f"model was rejected < {self.retry_after_s / 3600:g} h retry_after "
                    "(invariant 8: no edge, no retrain before new data)",
                )
        self.running[symbol] = at

    def _coverage_checked(self, event: CoverageChecked) -> None:
        at, trigger = event.at, event.trigger
        if trigger == CoverageTrigger.STARTUP:
            self.startup_checks += 1
            if self.startup_checks > 1:
                self._violate(
                    at, "a second 'startup' coverage check without a restart (invariant 2)"
                )
        elif trigger == CoverageTrigger.UNIVERSE:
            if self.refreshed_at != at:
                self._violate(at, "a 'universe' coverage check with no universe refresh before it")
        elif trigger == CoverageTrigger.TICK:
            last = self.last_check_at
            if last is not None and cadence.too_soon(last, at, self.coverage_interval_s):
                self._violate(
                    at,
                    f"coverage check {at - last:.0f} s after the previous one "
                    f"< {self.coverage_interval_s:g} s interval (invariant 2)",
                )
        else:
            self._violate(at, f"coverage check with unknown trigger {trigger!r}")
        self.refreshed_at = None
        self.last_check_at = at

    def _models_reloaded(self, event: ModelsReloaded) -> None:
        at = event.at
        if event.trigger == ReloadTrigger.STARTUP:
            self.store_startups += 1
            if self.store_startups > 1:
                self._violate(at, "models reloaded at 'startup' twice without a restart")
        elif event.trigger == ReloadTrigger.PUBLISHED:
            for symbol in event.symbols:
                if symbol not in self.running:
                    self._violate(
                        at,
                        f"{symbol}: model reloaded as 'published' with no trainer running "
                        "(invariant 4: reload only on publish or admin)",
                    )
        elif event.trigger != ReloadTrigger.ADMIN:
            self._violate(
                at,
                f"models reloaded on trigger {event.trigger!r} "
                "(invariant 4: only on publish or admin)",
            )

    def _order(self, event: OrderPlaced | OrderFailed) -> None:
        symbol, at, coid = event.symbol, event.at, event.client_order_id
        if coid in self.order_ids:
            self._violate(at, f"{symbol}: client order id {coid} used twice (invariant 7)")
        self.order_ids.add(coid)
        if event.intent is Intent.ENTRY and self.state.get(symbol) != SymbolState.ACTIVE:
            self._violate(
                at,
                f"{symbol}: entry order while {self._state_of(symbol)} "
                "(invariant 6: only ACTIVE symbols open positions)",
            )
