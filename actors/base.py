"""What every actor shares: tick acknowledgement, death reporting, stable addresses, events.

- `BaseActor` turns pykka's hooks into the supervision protocol: an exception in
  `started()` or in a handler is reported to the supervisor as `ActorDied`
  (pykka itself calls no `on_failure` for an exception in `on_start`), and every
  handled `Tick` is acknowledged to the clock so the clock may deliver the next.
  An exception while answering an `ask` ends the same way (pykka would only hand
  it back to the caller and keep the actor running, unseen by the supervisor): it
  is logged as an error naming the actor, the caller still gets it, and the actor
  stops and is restarted, which counts toward the restart limit.
- `Address` is a stable name for an actor whose incarnation may change when the
  supervisor restarts it; collaborators hold addresses, never raw refs.
- `Topic` fans events out to subscribers (admin `watch`, the invariant monitor,
  tests).
- `Runtime` is the state one System's actors share: the messages they handled
  and the background work (fits in the worker pool) in flight. Its
  `wait_quiet()` returns once every mailbox of that System is empty and none of
  its background work is in flight: the barrier that tests and the simulator use
  before they assert or advance virtual time. Two Systems in one process have
  two runtimes and do not wait for each other.
- `Later` is a reply an actor gives after its handler returned, once work outside
  its mailbox is done (`BaseActor.reply_later`); `ask` waits for it within the
  ask's one timeout, so the asker sees an ordinary reply.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import Any, Protocol, TypeVar

import pykka

from actors.clock import Clock, Mailbox
from actors.messages import ActorDied, BackgroundFailed, Event, Ping, Tick

log = logging.getLogger("tradeactors")

T = TypeVar("T")


class BackgroundWork:
    """Work running outside any mailbox (fits in the worker pool) that will end in a message."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0

    def begin(self) -> None:
        with self._cond:
            self._running += 1

    def end(self) -> None:
        """Call only after the message announcing the result has been told."""
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def count(self) -> int:
        with self._cond:
            return self._running

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._running == 0, timeout=timeout)


class Runtime:
    """The runtime state of one System: its actors, the messages they handled, its background work.

    One per System (tests and the simulator may run several in one process): an
    actor joins the runtime it is given when it is built and leaves it when it
    stops, and `wait_quiet` waits only for this runtime's actors and work.

    Each actor counts its messages in a cell of its own, written only by its own
    thread, so the per-message path takes no lock (a shared locked counter cost
    about a fifth of the messaging throughput: benchmarks/messaging.py). The total
    only grows: a round of `wait_quiet` in which anything was handled sees it change.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: dict[int, tuple[list[int], pykka.ActorRef[Any]]] = {}
        self._retired = 0
        self.background = BackgroundWork()
        # set when the System stops: long work inside a handler (a history download) gives
        # up at its next step instead of holding the stop up until it is done
        self.stopping = threading.Event()

    def join(self, ref: pykka.ActorRef[Any]) -> list[int]:
        """A new actor's cell: it adds 1 to `cell[0]` per message, from its own thread only.

        `BaseActor.__init__` joins; an actor built with a runtime must then be started
        (or `wait_quiet` waits for it in vain).
        """
        cell = [0]
        with self._lock:
            self._members[id(cell)] = (cell, ref)
        return cell

    def leave(self, cell: list[int]) -> None:
        """The actor stopped: keep its count in the total, forget it."""
        with self._lock:
            if self._members.pop(id(cell), None) is not None:
                self._retired += cell[0]

    def handled(self) -> int:
        """Messages handled so far by this runtime's actors, stopped ones included."""
        with self._lock:
            return self._retired + sum(cell[0] for cell, _ in self._members.values())

    def actors(self) -> list[pykka.ActorRef[Any]]:
        """The refs of this runtime's live actors."""
        with self._lock:
            return [ref for _, ref in self._members.values() if ref.is_alive()]

    def wait_quiet(self, timeout: float = 30.0) -> None:
        """Block until every mailbox of this runtime is drained and no background work is in flight.

        A round: wait for background work, then ping every live actor (a ping returns
        once all that was told before it is handled). Quiet when a round handled
        nothing, left every inbox empty, started or stopped no actor and no
        background work. Raises TimeoutError naming what is still busy.
        """
        deadline = time.monotonic() + timeout
        while True:
            before = self.handled()
            if not self.background.wait_idle(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"{self.background.count()} background jobs still running")
            refs = self.actors()
            for ref in refs:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{ref} still busy after {timeout:.0f} s")
                with suppress(pykka.ActorDeadError):
                    ref.ask(Ping(), timeout=left)
            if (
                self.handled() == before
                and self.background.count() == 0
                and all(ref.actor_inbox.empty() for ref in refs)
                and {id(ref) for ref in self.actors()} == {id(ref) for ref in refs}
            ):
                return


class Later:
    """A reply given after the handler returned: the handler returns it at once and answers
    it from a later message (the outcome of work outside the mailbox), so the mailbox serves
    other messages meanwhile. `ask` waits for the answer within the ask's timeout. Answered
    once: a second answer is ignored."""

    def __init__(self) -> None:
        self._future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        self.answered = False

    def answer(self, value: Any) -> None:
        if not self.answered:
            self.answered = True
            self._future.set(value)

    def fail(self, exc: BaseException) -> None:
        if not self.answered:
            self.answered = True
            self._future.set_exception(exc_info=(type(exc), exc, None))

    def get(self, timeout: float) -> Any:
        """The answer; pykka.Timeout after `timeout` s, or the exception it failed with."""
        return self._future.get(timeout=timeout)


class Asks(Protocol):
    def ask(self, message: Any, timeout: float = ...) -> Any: ...


def ask(target: Asks | pykka.ActorRef[Any], message: Any, timeout: float = 10.0) -> Any:
    """Ask and wait for the reply, a `Later` one included, within one `timeout` in all."""
    deadline = time.monotonic() + timeout
    reply = target.ask(message, timeout=timeout)
    if isinstance(reply, Later):
        return reply.get(max(0.0, deadline - time.monotonic()))
    return reply


class Address:
    """A stable handle on an actor: `tell` goes to its current incarnation.

    The supervisor `bind`s a new ref after each restart. A message told while the
    actor is between incarnations is logged and dropped (the restarted actor
    rebuilds its state from its collaborators and storage, not from lost mail).
    """

    def __init__(self, name: str, ref: pykka.ActorRef[Any] | None = None) -> None:
        self.name = name
        self._ref = ref

    def bind(self, ref: pykka.ActorRef[Any] | None) -> None:
        self._ref = ref

    @property
    def ref(self) -> pykka.ActorRef[Any] | None:
        return self._ref

    def is_alive(self) -> bool:
        return self._ref is not None and self._ref.is_alive()

    def tell(self, message: Any) -> None:
        ref = self._ref
        if ref is None:  # not started yet: whoever starts it asks for a fresh snapshot
            log.debug("%s: not started; dropped %s", self.name, type(message).__name__)
            return
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            log.warning("%s: not running; dropped %s", self.name, type(message).__name__)

    def ask(self, message: Any, timeout: float = 10.0) -> Any:
        """Ask and wait for the reply (a `Later` one too, within the same timeout); raises
        pykka.ActorDeadError if not running, pykka.Timeout if it does not answer in time."""
        ref = self._ref
        if ref is None:
            raise pykka.ActorDeadError(f"{self.name} is not running")
        return ask(ref, message, timeout)

    def __repr__(self) -> str:
        return f"Address({self.name!r})"


class Topic:
    """Fan-out to named subscribers; subscribing again under a name replaces the old mailbox.

    Names let a restarted actor re-subscribe without being delivered to twice.
    Dead subscribers are dropped.
    """

    def __init__(self, subscribers: dict[str, Mailbox] | None = None) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, Mailbox] = dict(subscribers or {})

    def subscribe(self, name: str, subscriber: Mailbox) -> None:
        with self._lock:
            self._subscribers[name] = subscriber

    def unsubscribe(self, name: str) -> None:
        with self._lock:
            self._subscribers.pop(name, None)

    def publish(self, message: Any) -> None:
        with self._lock:
            subscribers = list(self._subscribers.items())
        for name, subscriber in subscribers:
            try:
                subscriber.tell(message)
            except pykka.ActorDeadError:
                self.unsubscribe(name)


class TrainerDirectory:
    """The running trainers, one per symbol at most: its entries are the dedup guard.

    `start(symbol)` is atomic: of any number of concurrent calls for a symbol,
    exactly one starts a trainer while it lives. A trainer calls `remove` before
    it reports its outcome, so the symbol can be trained again afterwards.
    """

    def __init__(self, factory: Callable[[str], pykka.ActorRef[Any]] | None = None) -> None:
        self._lock = threading.Lock()
        self._refs: dict[str, pykka.ActorRef[Any]] = {}
        self.factory = factory

    def start(self, symbol: str) -> bool:
        """Start a trainer for `symbol` unless one runs; True if this call started it."""
        assert self.factory is not None, "TrainerDirectory has no factory"
        with self._lock:
            ref = self._refs.get(symbol)
            if ref is not None and ref.is_alive():
                return False
            self._refs[symbol] = self.factory(symbol)
            return True

    def running(self, symbol: str) -> bool:
        with self._lock:
            ref = self._refs.get(symbol)
            return ref is not None and ref.is_alive()

    def remove(self, symbol: str, ref: pykka.ActorRef[Any]) -> None:
        with self._lock:
            if self._refs.get(symbol) is ref:
                del self._refs[symbol]

    def symbols(self) -> list[str]:
        with self._lock:
            return sorted(s for s, ref in self._refs.items() if ref.is_alive())

    def stop_all(self, timeout: float = 10.0) -> None:
        with self._lock:
            refs = list(self._refs.values())
            self._refs.clear()
        for ref in refs:
            with suppress(pykka.ActorDeadError):
                ref.stop(timeout=timeout)


class BaseActor(pykka.ThreadingActor):
    """An actor of tradeactors. Subclasses implement `receive` (and maybe `started`/`stopped`).

    Accepts, besides its own messages: `Ping` (barrier; replies None).
    """

    def __init__(
        self,
        name: str,
        clock: Clock,
        supervisor: Mailbox | None = None,
        events: Topic | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.clock = clock
        self.supervisor = supervisor
        self.events = events or Topic()
        # An actor built without one is a runtime of its own: nobody else's wait_quiet sees it.
        self.runtime = runtime or Runtime()
        self.log = logging.getLogger(f"tradeactors.{name.split(':')[0]}")
        self._timers: list[int] = []
        self._holding_tick = False
        self._death_reported = False
        self._unanswered: list[Later] = []  # replies promised by `reply_later`
        self._handled = self.runtime.join(self.actor_ref)

    # --- hooks for subclasses ---------------------------------------------------

    def started(self) -> None:
        """Runs in the actor's thread before the first message."""

    def stopped(self) -> None:
        """Runs in the actor's thread on an orderly stop."""

    def receive(self, message: Any) -> Any:
        if isinstance(message, BackgroundFailed):
            raise RuntimeError(f"{self.name}: work outside the mailbox failed: {message.error}")
        self.log.warning("%s: unexpected message %s", self.name, type(message).__name__)
        return None

    # --- helpers ------------------------------------------------------------------

    def every(
        self, interval_s: float, make_tick: Callable[..., Tick], first_at: float | None = None
    ) -> None:
        """Have the clock deliver `make_tick(at=..., timer_id=...)` to me every interval_s."""
        timer_id = self.clock.schedule_periodic(
            interval_s,
            self.actor_ref,
            lambda at, tid: make_tick(at=at, timer_id=tid),
            first_at=first_at,
        )
        self._timers.append(timer_id)

    def publish(self, event: Event) -> None:
        self.events.publish(event)

    def reply_later(self) -> Later:
        """A reply for the handler to return now and answer from a later message. Should the
        actor stop first, the asker gets ActorDeadError at once rather than wait it out."""
        self._unanswered = [later for later in self._unanswered if not later.answered]
        later = Later()
        self._unanswered.append(later)
        return later

    def run_outside(
        self,
        work: Callable[[], T],
        done: Callable[[T], Any],
        expected: type[Exception] | tuple[type[Exception], ...] = (),
    ) -> None:
        """Run `work` in a thread of its own, not on this mailbox (exchange I/O that messages
        must not wait behind); `done(result)` is then told to this actor. An `expected`
        exception is told as `done(exception)`; any other (a bug) as `BackgroundFailed`,
        on which the actor crashes. Counted as background work, so `Runtime.wait_quiet`
        waits for it."""
        me, log, name = self.actor_ref, self.log, self.name
        background = self.runtime.background
        background.begin()

        def run() -> None:
            try:
                try:
                    message = done(work())
                except expected as exc:
                    message = done(exc)  # type: ignore[arg-type]
                except Exception as exc:
                    message = BackgroundFailed(error=f"{type(exc).__name__}: {exc}")
                me.tell(message)
            except pykka.ActorDeadError:
                log.info("%s: stopped before its background work finished", name)
            finally:
                background.end()

        threading.Thread(target=run, name=f"{name}-io", daemon=True).start()

    # --- pykka hooks ------------------------------------------------------------------

    def on_start(self) -> None:
        try:
            self.started()
        except Exception as exc:
            self._cancel_pending()
            self.runtime.leave(self._handled)
            self._report_death(exc, during_start=True)
            raise

    def on_stop(self) -> None:
        self._cancel_pending()
        self.runtime.leave(self._handled)
        self.stopped()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._cancel_pending()
        self.runtime.leave(self._handled)
        self._report_death(exception_value, during_start=False)

    def _report_death(self, exc: BaseException | None, during_start: bool) -> None:
        if self._death_reported:  # already reported by _handler_failed
            return
        self._death_reported = True
        if self.supervisor is not None:
            error = f"{type(exc).__name__}: {exc}" if exc else "unknown error"
            self.supervisor.tell(ActorDied(name=self.name, error=error, during_start=during_start))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            return None
        self._handled[0] += 1
        self._holding_tick = False
        try:
            return self.receive(message)
        except Exception as exc:
            self._handler_failed(exc, message)
            raise  # to the caller of an ask; a told message's failure pykka logs too
        finally:
            if isinstance(message, Tick) and not self._holding_tick:
                self.clock.tick_handled(message.timer_id)

    def _handler_failed(self, exc: Exception, message: Any) -> None:
        """A handler raised: log it, report it, and stop now (no further message is handled
        by an actor in an unknown state); the supervisor restarts it within its limit.
        For a told message pykka then calls `on_failure` again: it acts once."""
        self.log.error(
            "%s failed handling %s: %s: %s",
            self.name,
            type(message).__name__,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        self.on_failure(type(exc), exc, exc.__traceback__)
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    def hold_tick(self) -> None:
        """From a Tick's handler: the tick stays unhandled after the handler returns, until
        `release_tick(its timer_id)`: work the tick started elsewhere (another actor's reply)
        counts as part of handling it. Meanwhile its timer fires no further tick (a late
        reply skips a tick rather than piling them up) and a VirtualClock does not move
        past it (a test or simulation sees the whole of it before time moves on)."""
        self._holding_tick = True

    def release_tick(self, timer_id: int) -> None:
        """The work of a held tick is done (unknown or cancelled timers are ignored)."""
        self.clock.tick_handled(timer_id)

    def _cancel_pending(self) -> None:
        """Stopping (in order or by a failure): timers and promised replies end with it."""
        for timer_id in self._timers:
            self.clock.cancel(timer_id)
        self._timers.clear()
        for later in self._unanswered:
            later.fail(pykka.ActorDeadError(f"{self.name} stopped before answering"))
        self._unanswered.clear()
