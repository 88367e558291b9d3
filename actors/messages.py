"""Every message that crosses a mailbox, in one place.

Each message is a frozen, tagged msgspec Struct: immutable (no shared mutable
state crosses a mailbox) and encodable as JSON with a `"type"` tag. Grouped by
who receives them; each actor's docstring lists what it accepts.

One deliberate exception to "plain data": `ModelsUpdated.models` carries the
loaded, read-only estimators. They are never mutated after loading, so handing
the same objects to the trader costs nothing and shares no mutable state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from policy.lifecycle import SymbolRecord
from policy.risk import Intent, Position

if TYPE_CHECKING:  # the admin shell imports this module: keep scikit-learn out of its start
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


class TrainingRejected(Message, frozen=True):
    """The fit worked, but the promotion gate refused the model: kept as rejected, not traded."""

    symbol: str
    reasons: tuple[str, ...]
    trained_at: float  # the job's time (epoch seconds)
    window_end: float  # time of the last candle it was trained on
    fit_seconds: float
    metrics: dict[str, float] = {}
    kept_at: str | None = None  # where the store keeps the rejected artifact


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


# --- trader ----------------------------------------------------------------------


class SymbolStates(Message, frozen=True):
    """Coverage -> subscribers: the state of every symbol (after any change)."""

    records: tuple[SymbolRecord, ...]


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


class FitFinished(Message, frozen=True):
    """The worker process finished (result) or failed (error)."""

    staging_dir: str
    fit_seconds: float = 0.0
    rows: int = 0
    metrics: dict[str, float] = {}
    error: str | None = None
    promoted: bool = True  # the promotion gate's verdict (models.training.TrainResult)
    gate_reasons: tuple[str, ...] = ()
    window_end_ms: int = 0


# --- events: published on the event topic for watchers, the monitor and tests ----


class Event(Message, frozen=True):
    at: float


class SymbolTransition(Event, frozen=True):
    symbol: str
    old: str
    new: str
    reason: str


class CoverageChecked(Event, frozen=True):
    trigger: str  # "startup" | "tick" | "universe"
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
    trigger: str  # "startup" | "published" | "admin"


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


# --- admin wire protocol: admin shell <-> AdminServer, JSON text frames over a websocket ------
#
# Every frame is one tagged Struct: {"type": "Block", "id": 3, "symbol": "DOGE/USDT", ...}.
# A request carries an `id` that its reply echoes. The first frame of a connection must be
# `Auth`; after it, requests are answered in order. Replies: `Reply` (a command's outcome),
# `Error` (the request could not be understood or handled), `StatusReply`, `SymbolsReply`,
# `TrainersReply`; after `Watch`, events arrive as `WatchEvent` frames carrying the Watch's id.
# Requests refuse unknown fields (a typo must not be silently ignored); replies do not, so an
# older shell still reads a newer server's replies.

RequestId = Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]  # exact in any JSON reader
WireSymbol = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
WireText = Annotated[str, msgspec.Meta(max_length=500)]


class AdminRequest(Message, frozen=True, forbid_unknown_fields=True):
    """A request frame from an admin client."""

    id: RequestId


class AuthRequest(AdminRequest, frozen=True, tag="Auth", kw_only=True):
    """The first frame of every connection; wrong, missing or late: the connection is closed."""

    token: Annotated[str, msgspec.Meta(max_length=1024)]
    id: RequestId = 0


class StatusRequest(AdminRequest, frozen=True, tag="Status"):
    """Reply `StatusReply`: symbols, models, positions, PnL, trainers."""


class SymbolsRequest(AdminRequest, frozen=True, tag="Symbols"):
    """Reply `SymbolsReply`."""


class BlockRequest(AdminRequest, frozen=True, tag="Block"):
    symbol: WireSymbol
    reason: WireText = "no reason given"


class UnblockRequest(AdminRequest, frozen=True, tag="Unblock"):
    symbol: WireSymbol


class RetrainRequest(AdminRequest, frozen=True, tag="Retrain"):
    symbol: WireSymbol


class ReloadModelsRequest(AdminRequest, frozen=True, tag="ReloadModels"):
    pass


class PauseRequest(AdminRequest, frozen=True, tag="Pause"):
    pass


class ResumeRequest(AdminRequest, frozen=True, tag="Resume"):
    pass


class CloseRequest(AdminRequest, frozen=True, tag="Close"):
    symbol: WireSymbol


class CloseAllRequest(AdminRequest, frozen=True, tag="CloseAll"):
    pass


class RefreshUniverseRequest(AdminRequest, frozen=True, tag="RefreshUniverse"):
    pass


class TrainersRequest(AdminRequest, frozen=True, tag="Trainers"):
    """Reply `TrainersReply`."""


class WatchRequest(AdminRequest, frozen=True, tag="Watch"):
    """Stream events as `WatchEvent` until `Unwatch` or the connection closes.

    `signals`: include `SignalProduced` (one per active symbol per candle; off by default).
    """

    signals: bool = False


class UnwatchRequest(AdminRequest, frozen=True, tag="Unwatch"):
    pass


class ShutdownRequest(AdminRequest, frozen=True, tag="Shutdown"):
    """Stop the bot in order, as SIGTERM does."""

    reason: WireText = "admin shutdown"


AnyAdminRequest = (
    AuthRequest
    | StatusRequest
    | SymbolsRequest
    | BlockRequest
    | UnblockRequest
    | RetrainRequest
    | ReloadModelsRequest
    | PauseRequest
    | ResumeRequest
    | CloseRequest
    | CloseAllRequest
    | RefreshUniverseRequest
    | TrainersRequest
    | WatchRequest
    | UnwatchRequest
    | ShutdownRequest
)


class AdminReply(Message, frozen=True):
    """A frame from the AdminServer; `id` is the request's (None: the request had none)."""

    id: int | None


class Reply(AdminReply, frozen=True, tag="Reply"):
    """A command's outcome; ok=False when it does not apply (unknown symbol, no position)."""

    ok: bool
    detail: str


class ErrorReply(AdminReply, frozen=True, tag="Error"):
    """The request was not understood (named problem) or could not be handled."""

    error: str


class ModelView(msgspec.Struct, frozen=True, kw_only=True):
    """A loaded model as the admin sees it (no estimator)."""

    symbol: str
    version: str
    trained_at: float  # epoch seconds
    rows: int
    metrics: dict[str, float | None]  # walk-forward validation; None where not finite


class StatusReply(AdminReply, frozen=True, tag="StatusReply"):
    now: float  # the bot's clock (virtual in a simulation)
    quote: str
    paused: bool
    symbols: tuple[SymbolRecord, ...]
    models: tuple[ModelView, ...]
    positions: tuple[Position, ...]
    realized_pnl: float
    equity: float | None  # None: the exchange did not answer
    orders_placed: int
    last_tick_at: float | None
    trainers: tuple[str, ...]
    fees_quote: float = 0.0
    round_trips: int = 0
    wins: int = 0
    win_rate: float | None = None


class SymbolsReply(AdminReply, frozen=True, tag="SymbolsReply"):
    now: float
    symbols: tuple[SymbolRecord, ...]


class TrainersReply(AdminReply, frozen=True, tag="TrainersReply"):
    symbols: tuple[str, ...]


class WatchEvent(AdminReply, frozen=True, tag="WatchEvent"):
    """One event from the bot's topic, as plain JSON with its own "type" (e.g. OrderPlaced).

    `dropped`: events lost before this one because the client read too slowly.
    """

    event: dict[str, Any]
    dropped: int = 0


AnyAdminReply = Reply | ErrorReply | StatusReply | SymbolsReply | TrainersReply | WatchEvent
