"""What a run counts: per-symbol timelines, trainings, orders and signals, from its events.

Pure, like the invariant monitor: fed the same events in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.messages import (
    ActorRestarted,
    CoverageChecked,
    Event,
    GateDecided,
    Heartbeat,
    ModelsReloaded,
    OrderFailed,
    OrderPlaced,
    SignalProduced,
    SymbolTransition,
    TrainerFinished,
    TrainerStarted,
    UniverseRefreshed,
)


@dataclass
class Training:
    started_at: float
    finished_at: float | None = None
    ok: bool | None = None
    detail: str = ""


@dataclass
class SymbolTally:
    timeline: list[tuple[float, str]] = field(default_factory=list)  # (time, state entered)
    trainings: list[Training] = field(default_factory=list)
    orders: int = 0
    signals: int = 0
    gates: list[GateDecided] = field(default_factory=list)  # the promotion gate's verdicts


class EventTally:
    """Counts and timelines of a run, from its events (pure, like the monitor)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.symbols: dict[str, SymbolTally] = {}

    def _bump(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def symbol(self, symbol: str) -> SymbolTally:
        tally = self.symbols.get(symbol)
        if tally is None:
            tally = self.symbols[symbol] = SymbolTally()
        return tally

    def observe(self, event: Event) -> None:
        match event:
            case SymbolTransition(symbol=symbol, new=new, at=at):
                self.symbol(symbol).timeline.append((at, new))
            case TrainerStarted(symbol=symbol, at=at):
                self.symbol(symbol).trainings.append(Training(started_at=at))
            case TrainerFinished(symbol=symbol, at=at, ok=ok, detail=detail):
                runs = self.symbol(symbol).trainings
                if runs and runs[-1].finished_at is None:
                    runs[-1].finished_at, runs[-1].ok, runs[-1].detail = at, ok, detail
            case CoverageChecked(trigger=trigger):
                self._bump("coverage_checks")
                self._bump(f"coverage_checks.{trigger}")
            case UniverseRefreshed():
                self._bump("universe_refreshes")
            case ModelsReloaded(trigger=trigger):
                self._bump("model_reloads")
                self._bump(f"model_reloads.{trigger}")
            case Heartbeat():
                self._bump("heartbeats")
            case SignalProduced(symbol=symbol):
                self._bump("signals")
                self.symbol(symbol).signals += 1
            case OrderPlaced(symbol=symbol, amount=amount):
                self._bump("orders")
                if amount > 0:
                    self._bump("fills")
                self.symbol(symbol).orders += 1
            case OrderFailed(symbol=symbol):
                self._bump("orders")
                self._bump("orders_failed")
                self.symbol(symbol).orders += 1
            case ActorRestarted():
                self._bump("actor_restarts")
            case GateDecided(symbol=symbol):
                self.symbol(symbol).gates.append(event)

    def count(self, key: str) -> int:
        return self.counts.get(key, 0)

    def by_prefix(self, prefix: str) -> dict[str, int]:
        return {
            k.removeprefix(prefix): v
            for k, v in sorted(self.counts.items())
            if k.startswith(prefix)
        }
