"""The whole bot on virtual time: scheduler, invariant monitor, and what a run records.

Not an actor. `supervisor.simulate` builds the usual `System` (the same store,
coverage, trainers, trader and paper exchange as a live run) on a `VirtualClock`
and hands it to `run`, which:

- starts it and then repeatedly lets it settle (every mailbox empty, no fit in
  flight: `actors.base.wait_quiet`) and moves virtual time to the next due timer
  (`VirtualClock.advance_to(next_due())`). Nothing depends on machine speed: an
  actor never sees time move while anything is still being handled;
- trains through a `DeterministicPool`: fits run in parallel, but their results
  come back one at a time in symbol order, so models are published (and symbols
  become ACTIVE) in the same order on every run;
- feeds every event of the system's topic to an `InvariantMonitor` (DESIGN.md's
  invariants, checked while it runs) and an `EventTally` (what the summary counts);
- hands what reaches the supervisor's mailbox (an actor died) to the live
  `Supervisor.handle` between steps, so dead actors are restarted as in a live run;
- samples the trader's equity every `sample_s` of virtual time.

`summarize` turns the run into a `Summary` (pure); `simulation.report` writes it.
Same seed and settings give the same summary apart from `sim_report.WALL_FIELDS`.
`add_parser` and `command` are the `python supervisor.py simulate` command line.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

import msgspec
import pykka
from threadpoolctl import threadpool_limits

from actors.base import Address, Topic, background, wait_quiet
from actors.clock import Clock, VirtualClock
from actors.messages import (
    ActorDied,
    ActorRestarted,
    CoverageChecked,
    Event,
    GetTraderStatus,
    Heartbeat,
    ModelsReloaded,
    OrderFailed,
    OrderPlaced,
    SignalProduced,
    SymbolTransition,
    TraderStatus,
    TrainerFinished,
    TrainerStarted,
    UniverseRefreshed,
)
from config.settings import Settings, SettingsError, load_settings
from exchange.port import ExchangePort
from exchange.types import ExchangeError
from models.pool import TrainingBackend, TrainingPool
from models.training import TrainJob, TrainResult
from policy.lifecycle import DAY_S, SymbolState
from policy.risk import Intent
from simulation import report as sim_report
from simulation.report import Summary, SymbolSummary, TrainingSummary
from storage.ledger import Ledger, OrderRow

# 2026-11-26 00:00 UTC: a fixed start, so the synthetic market is the same on every run.
SIM_START = 1_795_651_200.0
HOUR_S = 3600.0
# Matches CoverageActor's gate: a clock tick can land a hair early after the startup check.
GATE_TOLERANCE_S = 1.0

log = logging.getLogger("tradeactors.simulation")


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class VirtualTimeFormatter(logging.Formatter):
    """Log lines stamped with the clock's time (virtual in a simulation), in UTC."""

    def __init__(self, clock: Clock, fmt: str = "%(asctime)s %(levelname)-7s %(message)s") -> None:
        super().__init__(fmt)
        self.clock = clock

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(self.clock.now(), tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


# --- training: parallel fits, results in a fixed order ----------------------------------


class DeterministicPool:
    """A training pool whose results are handed back only when the scheduler releases them.

    Fits run as soon as they are submitted (in parallel, with several workers), in a
    `TrainingPool` or in `inner` (e.g. a Dask cluster). The future a trainer gets
    resolves in `release_next`, one job at a time in symbol order, after every
    submitted fit has finished: what happens next (publish, ACTIVE, first trade)
    then happens in the same order on every run.
    """

    def __init__(
        self,
        workers: int = 1,
        kind: Literal["process", "thread"] = "thread",
        nice: int = 10,
        inner: TrainingBackend | None = None,
    ) -> None:
        self.inner = inner or TrainingPool(workers=workers, kind=kind, nice=nice)
        self._held_lock = threading.Lock()
        self._held: list[tuple[str, int, Future[TrainResult], Future[TrainResult]]] = []
        self._seq = itertools.count()

    def submit(self, job: TrainJob) -> Future[TrainResult]:
        inner = self.inner.submit(job)
        outer: Future[TrainResult] = Future()
        with self._held_lock:
            self._held.append((job.symbol, next(self._seq), inner, outer))
        # The trainer counted this job as background work before submitting. Held here
        # until released, it must not keep wait_quiet waiting: release_next counts it
        # again, and the trainer's completion callback ends that count.
        background.end()
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
        background.begin()
        if inner.cancelled():
            outer.cancel()
            background.end()
            return True
        error = inner.exception()
        if error is not None:
            outer.set_exception(error)
        else:
            outer.set_result(inner.result())
        return True


# --- the invariant monitor ------------------------------------------------------------


class InvariantMonitor:
    """Checks DESIGN.md's invariants on the event stream, in the order events were published.

    Pure: feed it events with `observe`; it never blocks or reads a clock.
    `violations` are readable lines, each naming the invariant, the time and the symbol.
    `listed_at` (symbol -> time of its first candle) lets it check the history
    length itself rather than trust the coverage actor's states.
    """

    def __init__(
        self,
        *,
        coverage_interval_s: float,
        min_history_days: float | None = None,
        listed_at: Mapping[str, float] | None = None,
    ) -> None:
        self.coverage_interval_s = coverage_interval_s
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
        self.violations.append(f"{utc(at)}: {text}")

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
                f"{utc(self.running[symbol])} still runs (invariant 1: one trainer per symbol)",
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
        self.running[symbol] = at

    def _coverage_checked(self, event: CoverageChecked) -> None:
        at, trigger = event.at, event.trigger
        if trigger == "startup":
            self.startup_checks += 1
            if self.startup_checks > 1:
                self._violate(
                    at, "a second 'startup' coverage check without a restart (invariant 2)"
                )
        elif trigger == "universe":
            if self.refreshed_at != at:
                self._violate(at, "a 'universe' coverage check with no universe refresh before it")
        elif trigger == "tick":
            if (
                self.last_check_at is not None
                and at - self.last_check_at < self.coverage_interval_s - GATE_TOLERANCE_S
            ):
                self._violate(
                    at,
                    f"coverage check {at - self.last_check_at:.0f} s after the previous one "
                    f"< {self.coverage_interval_s:g} s interval (invariant 2)",
                )
        else:
            self._violate(at, f"coverage check with unknown trigger {trigger!r}")
        self.refreshed_at = None
        self.last_check_at = at

    def _models_reloaded(self, event: ModelsReloaded) -> None:
        at = event.at
        if event.trigger == "startup":
            self.store_startups += 1
            if self.store_startups > 1:
                self._violate(at, "models reloaded at 'startup' twice without a restart")
        elif event.trigger == "published":
            for symbol in event.symbols:
                if symbol not in self.running:
                    self._violate(
                        at,
                        f"{symbol}: model reloaded as 'published' with no trainer running "
                        "(invariant 4: reload only on publish or admin)",
                    )
        elif event.trigger != "admin":
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


# --- what a run counts ---------------------------------------------------------------


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

    def count(self, key: str) -> int:
        return self.counts.get(key, 0)

    def by_prefix(self, prefix: str) -> dict[str, int]:
        return {
            k.removeprefix(prefix): v
            for k, v in sorted(self.counts.items())
            if k.startswith(prefix)
        }


class Observer:
    """The simulation's subscriber on the event topic: a mailbox feeding monitor and tally.

    Handles each event in the publisher's thread, under a lock, so nothing is
    queued behind the scheduler's back and the order is the order of publishing.
    """

    def __init__(self, monitor: InvariantMonitor, tally: EventTally | None = None) -> None:
        self.monitor = monitor
        self.tally = tally or EventTally()
        self._lock = threading.Lock()

    def tell(self, message: Any) -> None:
        if not isinstance(message, Event):
            return
        with self._lock:
            self.monitor.observe(message)
            self.tally.observe(message)


# --- the scheduler -----------------------------------------------------------------------


class BotStopped(Exception):
    """The supervisor stopped the bot (an actor died too often): the run ends here."""


class Scheduler:
    """Moves virtual time to the next due timer, only once everything has settled.

    `supervise()`, if given, handles what reached the supervisor's mailbox (an
    actor died: restart it) and says whether there was anything; it raises
    `BotStopped` when the supervisor gives up.
    """

    def __init__(
        self,
        clock: VirtualClock,
        pool: DeterministicPool | None,
        supervise: Callable[[], bool] | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        self.clock = clock
        self.pool = pool
        self.supervise = supervise
        self.timeout_s = timeout_s
        self.steps = 0

    def settle(self) -> None:
        """Every mailbox empty (the supervisor's too), no fit running, no fit result held."""
        while True:
            wait_quiet(self.timeout_s)
            if self.pool is not None and self.pool.release_next(self.timeout_s):
                continue
            if self.supervise is not None and self.supervise():
                continue
            return

    def step(self, until: float) -> bool:
        """Deliver the timers due next (if before `until`) and settle; False when none is."""
        due = self.clock.next_due()
        if due is None or due >= until:
            return False
        self.clock.advance_to(due)
        self.settle()
        self.steps += 1
        return True


# --- a run -------------------------------------------------------------------------------


class _Inbox(Protocol):
    queue: queue.Queue[Any]


class SimulatedSystem(Protocol):
    """What `run` needs of `supervisor.System`."""

    settings: Settings
    exchange: ExchangePort
    ledger: Ledger
    events: Topic
    addresses: dict[str, Address]

    @property
    def mailbox(self) -> _Inbox:
        """The supervisor's: ActorDied, StopRequested."""
        ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


@dataclass
class SimRun:
    """Everything a run produced, before it is summarized."""

    start: float
    end: float  # where virtual time stopped: the planned end, or earlier if the bot stopped
    wall_seconds: float
    steps: int
    stopped: str | None  # why the supervisor stopped the bot before the end, if it did
    monitor: InvariantMonitor
    tally: EventTally
    equity: list[tuple[float, float]]  # (virtual time, trader equity)
    final_equity: float
    orders: list[OrderRow]
    last_prices: dict[str, float]
    final_states: dict[str, str]


def run(
    system: SimulatedSystem,
    clock: VirtualClock,
    pool: DeterministicPool | None,
    seconds: float,
    *,
    monitor: InvariantMonitor,
    sample_s: float = HOUR_S,
    supervisor: Callable[[Any], bool] | None = None,
    on_step: Callable[[float, float], None] | None = None,
) -> SimRun:
    """Run `system` for `seconds` of virtual time from the clock's now; stops it at the end.

    `supervisor(message)` handles each message of the supervisor's mailbox as a
    live run does (`supervisor.Supervisor.handle`: restart a dead actor; False
    when the bot must stop). `on_step(virtual seconds done, wall seconds spent)`
    is called after every step (the progress bar). Ticks due exactly at the end
    are not delivered.
    """
    observer = Observer(monitor)
    system.events.subscribe("simulation", observer)
    start = clock.now()
    end = start + seconds
    stopped: list[str] = []

    def supervise() -> bool:
        handled_any = False
        while supervisor is not None:
            try:
                message = system.mailbox.queue.get_nowait()
            except queue.Empty:
                break
            handled_any = True
            if not supervisor(message):
                if isinstance(message, ActorDied):
                    stopped.append(f"{message.name} died too often, last: {message.error}")
                else:
                    stopped.append(getattr(message, "reason", None) or str(message))
                raise BotStopped(stopped[-1])
        return handled_any

    scheduler = Scheduler(clock, pool, supervise)
    trader = system.addresses["trader"]
    equity: list[tuple[float, float]] = []
    wall_start = time.monotonic()
    next_sample = start
    try:
        system.start()
        with contextlib.suppress(BotStopped):
            scheduler.settle()
            while True:
                now = clock.now()
                if now >= next_sample:
                    status: TraderStatus = trader.ask(GetTraderStatus())
                    equity.append((now, status.equity))
                    next_sample = start + (math.floor((now - start) / sample_s) + 1) * sample_s
                if on_step is not None:
                    on_step(now - start, time.monotonic() - wall_start)
                if not scheduler.step(end):
                    break
        if stopped:
            end = clock.now()
            log.error("Simulation ended early at %s: the bot stopped (%s)", utc(end), stopped[0])
        try:
            final = trader.ask(GetTraderStatus()).equity
        except pykka.ActorDeadError:  # the bot stopped: its last sample stands
            final = equity[-1][1] if equity else math.nan
        if not equity or equity[-1][0] < clock.now():
            equity.append((clock.now(), final))
        wall = time.monotonic() - wall_start
        if on_step is not None:
            on_step(end - start, wall)
        orders = system.ledger.orders()  # before stop(): the database closes with the system
    finally:
        system.stop()
        system.events.unsubscribe("simulation")
    symbols = sorted({row.symbol for row in orders})
    return SimRun(
        start=start,
        end=end,
        wall_seconds=wall,
        steps=scheduler.steps,
        stopped=stopped[0] if stopped else None,
        monitor=monitor,
        tally=observer.tally,
        equity=equity,
        final_equity=final,
        orders=orders,
        last_prices=_last_prices(system.exchange, system.settings.timeframe, symbols),
        final_states={
            s: t.timeline[-1][1] for s, t in observer.tally.symbols.items() if t.timeline
        },
    )


def _last_prices(
    exchange: ExchangePort, timeframe: str, symbols: Iterable[str]
) -> dict[str, float]:
    prices: dict[str, float] = {}
    for symbol in symbols:
        try:
            candles = exchange.fetch_ohlcv(symbol, timeframe, limit=1)
        except ExchangeError as exc:
            log.warning("%s: no last price for the summary: %s", symbol, exc)
            continue
        if candles:
            prices[symbol] = float(candles[-1][4])
    return prices


# --- the summary -----------------------------------------------------------------------


def max_drawdown(values: Iterable[float]) -> tuple[float, float]:
    """Largest fall from a running peak: (fraction of that peak, absolute)."""
    peak = -math.inf
    worst, worst_abs = 0.0, 0.0
    for value in values:
        if not math.isfinite(value):
            continue
        peak = max(peak, value)
        drop = peak - value
        if drop > worst_abs:
            worst_abs = drop
            worst = drop / peak if peak > 0 else 0.0
    return worst, worst_abs


def symbol_pnl(rows: Iterable[OrderRow], last_prices: Mapping[str, float]) -> dict[str, float]:
    """Per symbol: sells - buys - fees, plus what is still held at its last close."""
    cash: dict[str, float] = {}
    held: dict[str, float] = {}
    for row in rows:
        if row.filled <= 0 or row.average_price is None:
            continue
        notional = row.filled * row.average_price
        sign = -1.0 if row.side == "buy" else 1.0
        cash[row.symbol] = cash.get(row.symbol, 0.0) + sign * notional - row.fee_quote
        held[row.symbol] = held.get(row.symbol, 0.0) - sign * row.filled
    return {
        symbol: value + held.get(symbol, 0.0) * last_prices.get(symbol, 0.0)
        for symbol, value in cash.items()
    }


def summarize(
    sim: SimRun,
    settings: Settings,
    *,
    seed: int,
    pool: str,
    workers: int,
    training_note: str,
) -> Summary:
    tally, monitor = sim.tally, sim.monitor
    hours = lambda t: round((t - sim.start) / HOUR_S, 4)  # noqa: E731
    pnl = symbol_pnl(sim.orders, sim.last_prices)
    symbols: dict[str, SymbolSummary] = {}
    for name in sorted(tally.symbols):
        t = tally.symbols[name]
        active = next((at for at, state in t.timeline if state == SymbolState.ACTIVE), None)
        symbols[name] = SymbolSummary(
            final_state=sim.final_states.get(name, "unknown"),
            trainings_started=len(t.trainings),
            trainings_failed=sum(run.ok is False for run in t.trainings),
            became_active_at=None if active is None else utc(active),
            orders=t.orders,
            pnl=round(pnl.get(name, 0.0), 6),
            signals=t.signals,
            timeline=[(hours(at), state) for at, state in t.timeline],
            trainings=[
                (hours(r.started_at), None if r.finished_at is None else hours(r.finished_at), r.ok)
                for r in t.trainings
            ],
        )
    sim_seconds = sim.end - sim.start
    drawdown, drawdown_abs = max_drawdown(e for _, e in sim.equity)
    reloads = tally.by_prefix("model_reloads.")
    return Summary(
        start=utc(sim.start),
        days=round(sim_seconds / DAY_S, 6),
        seed=seed,
        market_symbols=len(symbols),
        sim_seconds=sim_seconds,
        wall_seconds=round(sim.wall_seconds, 3),
        speedup=round(sim_seconds / sim.wall_seconds, 1) if sim.wall_seconds > 0 else 0.0,
        steps=sim.steps,
        coverage_checks=tally.count("coverage_checks"),
        coverage_checks_by_trigger=tally.by_prefix("coverage_checks."),
        universe_refreshes=tally.count("universe_refreshes"),
        model_reloads=tally.count("model_reloads"),
        model_reloads_by_trigger=reloads,
        models_published=reloads.get("published", 0),
        heartbeats=tally.count("heartbeats"),
        actor_restarts=tally.count("actor_restarts"),
        stopped_early=sim.stopped,
        duplicate_trainings=monitor.duplicate_trainings,
        invariant_violations=list(monitor.violations),
        orders=tally.count("orders"),
        orders_failed=tally.count("orders_failed"),
        fills=tally.count("fills"),
        signals=tally.count("signals"),
        starting_balance=settings.exchange.starting_balance,
        final_equity=round(sim.final_equity, 6),
        max_drawdown=round(drawdown, 6),
        max_drawdown_quote=round(drawdown_abs, 6),
        training=TrainingSummary(
            window_days=settings.training.window_days,
            max_iter=settings.training.max_iter,
            pool=pool,
            workers=workers,
            note=training_note,
        ),
        symbols=symbols,
        equity_curve=[(hours(t), round(e, 6)) for t, e in sim.equity],
    )


# --- progress ------------------------------------------------------------------------


def progress_line(done_s: float, total_s: float, wall_s: float, width: int = 24) -> str:
    """`[#########---------] day 2.4 of 7 (57.6 h)  3,210x real time  43 s`"""
    frac = 0.0 if total_s <= 0 else min(1.0, max(0.0, done_s / total_s))
    filled = round(frac * width)
    speed = f"{done_s / wall_s:,.0f}x real time" if wall_s > 0 else "-"
    return (
        f"[{'#' * filled}{'-' * (width - filled)}] day {done_s / DAY_S:.1f} of "
        f"{total_s / DAY_S:g} ({done_s / HOUR_S:.1f} h)  {speed}  {wall_s:.0f} s"
    )


class ProgressBar:
    """One line on a terminal, redrawn at most 10 times a second (silent if not a terminal)."""

    def __init__(self, total_s: float, stream: TextIO | None = None) -> None:
        self.total_s = total_s
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._last_draw = -math.inf
        self._shown = False
        self._lock = threading.Lock()

    def update(self, done_s: float, wall_s: float) -> None:
        if not self.enabled or (wall_s - self._last_draw < 0.1 and done_s < self.total_s):
            return
        with self._lock:
            self._last_draw = wall_s
            self.stream.write("\r\x1b[K" + progress_line(done_s, self.total_s, wall_s))
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        """Erase the bar (before a log line, or at the end); the next update redraws it."""
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._shown = False
                self._last_draw = -math.inf

    def finish(self) -> None:
        with self._lock:
            if self._shown:
                self.stream.write("\n")
                self.stream.flush()
                self._shown = False


class ProgressAwareHandler(logging.StreamHandler[TextIO]):
    """A stream handler that erases the progress bar before each line it writes."""

    def __init__(self, bar: ProgressBar, stream: TextIO | None = None) -> None:
        super().__init__(stream if stream is not None else bar.stream)
        self.bar = bar

    def emit(self, record: logging.LogRecord) -> None:
        self.bar.clear()
        super().emit(record)


# --- the command line: python supervisor.py simulate ... ----------------------------------

TRAINING_NOTE = (
    "Trains as settings.training says (window, iterations) unless --train-days shortens the "
    "window for speed. Fits run while virtual time stands still, so they cost wall time only. "
    "Thread pool by default: nothing trades during a fit here, so a worker process would buy "
    "no latency isolation; results are handed back in symbol order with either pool."
)


# `supervisor.simulate` (only the supervisor knows the actors, so it builds the system).
Simulate = Callable[..., Summary]


def add_parser(commands: Any) -> None:
    """The `simulate` subcommand, on the supervisor's subparsers."""
    sim = commands.add_parser(
        "simulate",
        help="run the whole bot on virtual time and write a report",
        description="Run the whole bot on virtual time, as fast as the machine allows; "
        "writes OUT/summary.json, OUT/report.html and OUT/simulation.log.",
    )
    sim.add_argument("--days", type=float, default=7.0, help="simulated days (default: 7)")
    sim.add_argument(
        "--symbols",
        type=int,
        default=None,
        help="synthetic symbols; up to 10 from the built-in market, more are generated "
        "(default: the built-in 10)",
    )
    sim.add_argument("--seed", type=int, default=None, help="market seed (default: settings)")
    sim.add_argument(
        "--settings", default="settings.yaml", help="settings file (default: %(default)s)"
    )
    sim.add_argument("--out", default="sim-out", help="report folder (default: %(default)s)")
    sim.add_argument(
        "--pool", choices=("thread", "process"), default="thread", help="training pool kind"
    )
    sim.add_argument(
        "--workers", type=int, default=None, help="fits in parallel (default: CPU cores)"
    )
    sim.add_argument(
        "--training-backend",
        choices=("processes", "dask"),
        default=None,
        help="dask: fits on the Dask cluster of training.dask (docs/distributed.md), "
        "--pool is then ignored (default: training.backend of the settings)",
    )
    sim.add_argument(
        "--train-days",
        type=float,
        default=None,
        help="history per training, overriding training.window_days (faster fits, "
        "less faithful models)",
    )


def configure_logging(clock: Clock, path: Path, level: str, bar: ProgressBar) -> None:
    """`level` and up to the log file, WARNING and up to the terminal; virtual time stamps."""
    formatter = VirtualTimeFormatter(clock, "%(asctime)s %(levelname)-7s %(name)-24s %(message)s")
    to_file = logging.FileHandler(path, mode="w", encoding="utf-8")
    to_file.setLevel(level)
    to_file.setFormatter(formatter)
    to_terminal = ProgressAwareHandler(bar)
    to_terminal.setLevel(logging.WARNING)
    to_terminal.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [to_file, to_terminal]
    root.setLevel(min(logging.getLevelName(level), logging.WARNING))
    logging.getLogger("pykka").setLevel(logging.WARNING)


def command(args: Any, simulate: Simulate) -> int:
    """`python supervisor.py simulate`: 0 when the run kept every invariant to the end, 1 if
    not (or the bot stopped early), 2 on bad arguments, 130 on Ctrl-C."""
    try:
        settings = load_settings(args.settings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    problems = []
    if not args.days > 0:
        problems.append(f"--days must be > 0, got {args.days:g}")
    if args.symbols is not None and args.symbols < 1:
        problems.append(f"--symbols must be >= 1, got {args.symbols}")
    if args.workers is not None and args.workers < 1:
        problems.append(f"--workers must be >= 1, got {args.workers}")
    if args.train_days is not None:
        if args.train_days > 0:
            training = msgspec.structs.replace(settings.training, window_days=args.train_days)
            settings = msgspec.structs.replace(settings, training=training)
        else:
            problems.append(f"--train-days must be > 0, got {args.train_days:g}")
    if args.training_backend is not None:
        training = msgspec.structs.replace(settings.training, backend=args.training_backend)
        settings = msgspec.structs.replace(settings, training=training)
    if problems:
        print("simulate: " + "; ".join(problems), file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clock = VirtualClock(start=SIM_START)
    bar = ProgressBar(args.days * DAY_S)
    configure_logging(clock, out / "simulation.log", settings.logging.level, bar)
    log.info("Simulating %g days from %s; report in %s", args.days, utc(SIM_START), out)
    # As in a live run: BLAS capped process-wide (OpenMP is capped per thread by prob_up
    # and run_training), so fits in threads never oversubscribe the cores.
    thread_cap = threadpool_limits(limits=1)
    try:
        summary = simulate(
            settings,
            days=args.days,
            symbols=args.symbols,
            seed=args.seed,
            pool_kind=args.pool,
            workers=args.workers,
            clock=clock,
            on_step=bar.update,
        )
    except KeyboardInterrupt:
        bar.finish()
        print("simulate: interrupted; no report written", file=sys.stderr)
        return 130
    finally:
        bar.finish()
        thread_cap.restore_original_limits()
    sim_report.write(out, summary)
    print(sim_report.format_summary(summary, out))
    return 1 if summary.invariant_violations or summary.stopped_early else 0
