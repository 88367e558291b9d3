"""Every message that crosses a mailbox, in one place.

Each message is a frozen, tagged msgspec Struct: immutable (no shared mutable
state crosses a mailbox) and encodable as JSON with a `"type"` tag. Grouped by
who receives them; each actor's docstring lists what it accepts.

Two deliberate exceptions to "plain data": `ModelsUpdated.models` carries the
loaded, read-only estimators, and `CandlesClosed.candles` read-only numpy arrays.
They are never mutated after they are made, so handing the same objects to the
trader costs nothing and shares no mutable state.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import msgspec

from exchange.types import OrderRequest
from execution.orders import Sent
from policy.lifecycle import SymbolRecord
from policy.risk import Decision, Intent, Position

if TYPE_CHECKING:  # importing the messages must not import scikit-learn
    from models.artifacts import LoadedModel


class Message(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Base of every message; the JSON tag is the class name."""


# --- clock ticks: delivered by the Clock, acknowledged by BaseActor ----------------


class Tick(Message, frozen=True):
    at: float  # the time the tick was due
    timer_id: int = 0


class CoverageTick(Tick, frozen=True):
    """Coverage: time to evaluate every symbol's state (every coverage.interval_s)."""


class UniverseTick(Tick, frozen=True):
    """Coverage: time to refresh the universe (every universe.refresh_s)."""


class TradeTick(Tick, frozen=True):
    """Trader: a candle has just closed (every timeframe)."""


class HeartbeatTick(Tick, frozen=True):
    """Trader: log the heartbeat line (every heartbeat_s)."""


class HealthTick(Tick, frozen=True):
    """Trader: check the exchange is reachable (every health_s)."""


# --- plumbing --------------------------------------------------------------------


class Ping(Message, frozen=True):
    """Barrier: asking it returns once everything told before it was handled."""


class ActorDied(Message, frozen=True):
    """To the supervisor: an actor stopped on an exception (in on_start or a handler)."""

    name: str
    error: str
    during_start: bool = False


class BackgroundFailed(Message, frozen=True):
    """To an actor from its own work outside the mailbox (`BaseActor.run_outside`): it raised
    something its handler does not expect (a bug). The actor crashes on it, so the
    supervisor sees it."""

    error: str


class StopRequested(Message, frozen=True):
    """To the supervisor: stop every actor in order (a signal, or an admin `shutdown`)."""

    reason: str


class Subscribe(Message, frozen=True):
    """Store, coverage: send me your current state now, and every change from now on.

    `subscriber` is an `actors.base.Address` (or anything with `tell`); subscribing
    again under the same `name` replaces the previous subscription.
    """

    name: str
    subscriber: Any


# --- coverage actor ------------------------------------------------------------------


class TrainingSucceeded(Message, frozen=True):
    symbol: str
    version: str
    fit_seconds: float
    metrics: dict[str, float] = {}


class TrainingFailed(Message, frozen=True):
    symbol: str
    error: str
    untrainable: bool = False  # the data cannot give a model (one label class)


class TrainingRejected(Message, frozen=True):
    """The fit worked, but the promotion gate refused the model: kept as rejected, not traded."""

    symbol: str
    reasons: tuple[str, ...]
    trained_at: float  # the job's time (epoch seconds)
    window_end: float  # time of the last candle it was trained on
    fit_seconds: float
    metrics: dict[str, float] = {}
    kept_at: str | None = None  # where the store keeps the rejected artifact


class UniverseFetched(Message, frozen=True):
    """Coverage, to itself: what a lookup outside its mailbox found on the exchange."""

    trigger: CoverageTrigger  # the evaluation that waits for it
    refreshed: bool  # the universe was asked for
    universe: tuple[str, ...]  # the fresh universe (refreshed, no error) or the one it had
    error: str | None  # why the refresh failed
    starts: dict[str, int | None]  # symbol -> open time of its first candle (ms)
    start_errors: dict[str, str]  # symbol -> why its history start is unknown


class BlockSymbol(Message, frozen=True):
    symbol: str
    reason: str = "no reason given"


class UnblockSymbol(Message, frozen=True):
    symbol: str


class RetrainSymbol(Message, frozen=True):
    symbol: str


class RefreshUniverse(Message, frozen=True):
    """An admin asks for a universe refresh now (followed by a coverage evaluation)."""


class GetSymbols(Message, frozen=True):
    """Ask: reply `SymbolStates`."""


class CommandResult(Message, frozen=True):
    """Reply to an admin command: ok, or why it does not apply."""

    ok: bool
    detail: str


# --- model store --------------------------------------------------------------------


class PublishModel(Message, frozen=True):
    """Trainer -> store: publish the staged artifact; reply ModelPublished or PublishFailed."""

    symbol: str
    staging_dir: str
    reply_to: Any  # Address or ActorRef of the trainer


class KeepRejected(Message, frozen=True):
    """Trainer -> store: keep the staged model as rejected (never loaded); reply RejectedKept."""

    symbol: str
    staging_dir: str
    reasons: tuple[str, ...]
    metrics: dict[str, float]
    trained_at_ms: int
    window_end_ms: int
    reply_to: Any


class RejectedKept(Message, frozen=True):
    symbol: str
    path: str | None  # None: it could not be kept (the log says why); the verdict stands


class ModelPublished(Message, frozen=True):
    symbol: str
    version: str


class PublishFailed(Message, frozen=True):
    symbol: str
    error: str


class ReloadModels(Message, frozen=True):
    """Reload every model from disk now (an admin asked)."""

    reason: str = "admin request"


class GetModels(Message, frozen=True):
    """Ask: reply `ModelsUpdated` with the current set."""


class ModelsUpdated(Message, frozen=True):
    """Store -> subscribers: the current models, after `version` changed `symbols`."""

    version: str | None
    symbols: tuple[str, ...]
    models: dict[str, LoadedModel]


# --- market data ---------------------------------------------------------------------


class FetchCandles(Message, frozen=True):
    """Trader -> market data: the closed candles of `symbols`; reply `CandlesClosed` to `reply_to`.

    `close_ms`: the close time of the newest candle wanted (the candle that just
    closed, or for a symbol that just became tradable the newest final one).
    """

    at: float  # when it was asked (the trade tick's due time)
    symbols: tuple[str, ...]
    close_ms: int
    reply_to: Any  # Address or ActorRef of the trader
    tick_id: int = 0  # the trade tick whose handling waits for the reply (0: none)


class CandlesClosed(Message, frozen=True):
    """Market data -> trader: every asked symbol's window of closed candles, or why not.

    The one way candles reach a decision: live, paper and simulation alike.
    """

    at: float  # the `at` of the FetchCandles it answers
    close_ms: int  # the close time of the newest candle in every window
    candles: dict[str, Any]  # symbol -> read-only float64 array (rows, 6), oldest first
    missing: dict[str, str] = {}  # symbol -> why there is no candle for close_ms
    tick_id: int = 0  # the FetchCandles' tick_id


class CandlesOverdue(Message, frozen=True):
    """Trader, to itself, a candle after a FetchCandles: if no answer came, stop waiting."""

    tick_id: int


# --- trader ----------------------------------------------------------------------


class SymbolStates(Message, frozen=True):
    """Coverage -> subscribers: the state of every symbol (after any change)."""

    records: tuple[SymbolRecord, ...]


class BalancesFetched(Message, frozen=True):
    """Trader, to itself: balances fetched outside its mailbox (health check, after a fill)."""

    seq: int  # newer requests win: an older answer arriving late is ignored
    balances: dict[str, Any] | None  # asset -> exchange.types.Balance; None: failed
    error: str | None = None
    health: bool = False  # the periodic health check (it logs its line)


class ClosePriced(Message, frozen=True):
    """Trader, to itself: the price an admin close is sent at, looked up outside its mailbox
    (the symbol's last closed candle)."""

    symbol: str
    candle_ms: int | None = None  # that candle's open time; None: no price
    price: float | None = None
    error: str | None = None  # why there is none


class OrderAnswered(Message, frozen=True):
    """Trader, to itself: what became of an order sent outside its mailbox (recorded SENT)."""

    request: OrderRequest
    decision: Decision
    price: float  # the price it was decided at (the fill's, if the exchange gives none)
    sent: Sent


class ReconcileDue(Message, frozen=True):
    """Trader, to itself: orders that were maybe in flight can no longer arrive; look again."""


class Pause(Message, frozen=True):
    """No new entries; exits (stop loss, sell signals) still managed."""


class Resume(Message, frozen=True):
    pass


class CloseSymbol(Message, frozen=True):
    symbol: str


class CloseAll(Message, frozen=True):
    pass


class GetTraderStatus(Message, frozen=True):
    """Ask: reply `TraderStatus`."""


class TraderStatus(Message, frozen=True):
    paused: bool
    positions: tuple[Position, ...]
    realized_pnl: float  # closed trades, net of the fees of both fills
    equity: float
    orders_placed: int
    last_tick_at: float | None
    fees_quote: float = 0.0  # every fill's fee, open positions' entries included
    round_trips: int = 0  # positions opened and closed again
    wins: int = 0  # round trips with a net gain
    win_rate: float | None = None  # wins / round_trips; None before the first


# --- trainer (its own mailbox) ----------------------------------------------------


class StartTraining(Message, frozen=True):
    pass


class PublishOverdue(Message, frozen=True):
    """Trainer, to itself: the store has not answered its PublishModel in time."""


class FitFinished(Message, frozen=True):
    """The worker process finished (result) or failed (error)."""

    staging_dir: str
    fit_seconds: float = 0.0
    rows: int = 0
    metrics: dict[str, float] = {}
    error: str | None = None
    untrainable: bool = False  # the data cannot give a model: retrying is pointless
    promoted: bool = True  # the promotion gate's verdict (models.training.TrainResult)
    gate_reasons: tuple[str, ...] = ()
    window_end_ms: int = 0


# --- events: published on the event topic for watchers, the monitor and tests ----


class Event(Message, frozen=True):
    at: float


# StrEnums: on the wire (JSON, the admin watch) a trigger is still the plain string.
class CoverageTrigger(enum.StrEnum):
    """Why the coverage actor evaluated every symbol."""

    STARTUP = "startup"  # the model store's first reply after a (re)start
    TICK = "tick"  # the periodic CoverageTick, gated by coverage.interval_s
    UNIVERSE = "universe"  # right after a universe refresh


class ReloadTrigger(enum.StrEnum):
    """Why the model store (re)loaded models."""

    STARTUP = "startup"
    PUBLISHED = "published"  # a trainer's model was published
    ADMIN = "admin"  # an operator's ReloadModels


class SymbolTransition(Event, frozen=True):
    symbol: str
    old: str
    new: str
    reason: str


class CoverageChecked(Event, frozen=True):
    trigger: CoverageTrigger
    symbols: int
    active: int
    blocked: int


class UniverseRefreshed(Event, frozen=True):
    added: tuple[str, ...]
    removed: tuple[str, ...]
    size: int


class TrainerStarted(Event, frozen=True):
    symbol: str


class TrainerFinished(Event, frozen=True):
    symbol: str
    ok: bool
    detail: str


class GateDecided(Event, frozen=True):
    """A trained model passed the promotion gate (published as `version`) or was rejected."""

    symbol: str
    promoted: bool
    reasons: tuple[str, ...] = ()
    version: str | None = None
    window_end: float | None = None  # rejected: the last candle it saw (retries count from it)


class ModelsReloaded(Event, frozen=True):
    version: str | None
    symbols: tuple[str, ...]
    trigger: ReloadTrigger


class SignalProduced(Event, frozen=True):
    symbol: str
    candle_ms: int
    prob_up: float


class OrderPlaced(Event, frozen=True):
    symbol: str
    client_order_id: str
    side: str
    intent: Intent
    amount: float
    price: float
    why: str
    fee_quote: float = 0.0
    # set on the sale that closed a round trip: its net PnL after both fees, and % of its cost
    net_pnl: float | None = None
    return_pct: float | None = None


class OrderFailed(Event, frozen=True):
    symbol: str
    client_order_id: str
    intent: Intent
    error: str


class Heartbeat(Event, frozen=True):
    active: int
    blocked: int
    open_positions: int


class ActorRestarted(Event, frozen=True):
    name: str
    error: str


class Reconciled(Event, frozen=True):
    """Trader: the ledger agrees with the exchange (at start, and after an unknown outcome)."""

    exchange: str
    resolved: dict[str, int]  # outcome -> count, of orders whose outcome was unknown
    positions: int
    mismatches: int
    summary: str
