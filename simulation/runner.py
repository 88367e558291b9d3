"""The whole bot on virtual time: the run loop that drives a `System` and records what it did.

Not an actor. `simulation.simulate.simulate` builds the usual `System` (the same
store, coverage, trainers, trader and paper exchange as a live run) on a
`VirtualClock` and hands it to `run`, which:

- starts it and then repeatedly lets it settle (every mailbox empty, no fit in
  flight: the system's `Runtime.wait_quiet`) and moves virtual time to the next
  due timer (`VirtualClock.advance_to(next_due())`). Nothing depends on machine
  speed: an actor never sees time move while anything is still being handled;
- trains through a `DeterministicPool` (simulation.pool): fits run in parallel,
  but their results come back one at a time in symbol order, so models are
  published (and symbols become ACTIVE) in the same order on every run;
- feeds every event of the system's topic to an `InvariantMonitor`
  (simulation.monitor) and an `EventTally` (simulation.tally);
- hands what reaches the supervisor's mailbox (an actor died) to the live
  `Supervisor.handle` between steps, so dead actors are restarted as in a live run;
- samples the trader's equity every `sample_s` of virtual time.

`simulation.summary.summarize` turns the `SimRun` into a `Summary`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pykka

from actors.base import Address, Runtime, Topic
from actors.clock import VirtualClock
from actors.messages import ActorDied, Event, GetTraderStatus, TraderStatus
from config.settings import Settings
from core.timefmt import format_utc
from exchange.port import ExchangePort
from exchange.types import ExchangeError
from simulation import trades
from simulation.monitor import InvariantMonitor
from simulation.pool import DeterministicPool
from simulation.tally import EventTally
from storage.ledger import FillRow, Ledger, OrderRow

# 2026-11-26 00:00 UTC: a fixed start, so the synthetic market is the same on every run.
SIM_START = 1_795_651_200.0
HOUR_S = 3600.0

log = logging.getLogger("tradeactors.simulation")


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
        runtime: Runtime,
        pool: DeterministicPool | None,
        supervise: Callable[[], bool] | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        self.clock = clock
        self.runtime = runtime
        self.pool = pool
        self.supervise = supervise
        self.timeout_s = timeout_s
        self.steps = 0

    def settle(self) -> None:
        """Every mailbox empty (the supervisor's too), no fit running, no fit result held."""
        while True:
            self.runtime.wait_quiet(self.timeout_s)
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
    """What `run` needs of `app.system.System`."""

    settings: Settings
    exchange: ExchangePort
    ledger: Ledger
    events: Topic
    addresses: dict[str, Address]
    runtime: Runtime

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
    fills: list[FillRow] = field(default_factory=list)
    prices: dict[str, list[trades.Candle]] = field(default_factory=dict)  # the run's candles


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
    live run does (`app.supervision.Supervisor.handle`: restart a dead actor; False
    when the bot must stop). `on_step(virtual seconds done, wall seconds spent)`
    is called after every step (the progress bar). Ticks due exactly at the end
    are not delivered. `pool`, if given, must share the system's runtime (its
    trainers count their fits there).
    """
    if pool is not None and pool.runtime is not system.runtime:
        raise ValueError("the DeterministicPool and the System must share one Runtime")
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

    scheduler = Scheduler(clock, system.runtime, pool, supervise)
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
            log.error(
                "Simulation ended early at %s: the bot stopped (%s)",
                format_utc(end, seconds=True),
                stopped[0],
            )
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
        fills = system.ledger.fills()
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
        fills=fills,
        prices=trades.fetch_prices(
            system.exchange, system.settings.timeframe, sorted(observer.tally.symbols), start, end
        ),
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
