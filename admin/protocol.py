"""The admin wire protocol: admin shell <-> AdminServer, JSON text frames over a websocket.

Every frame is one tagged Struct: {"type": "Block", "id": 3, "symbol": "DOGE/USDT", ...}.
A request carries an `id` that its reply echoes. The first frame of a connection must be
`Auth`; after it, requests are answered in order. Replies: `Reply` (a command's outcome),
`Error` (the request could not be understood or handled), `StatusReply`, `SymbolsReply`,
`TrainersReply`; after `Watch`, events arrive as `WatchEvent` frames carrying the Watch's id.
Requests refuse unknown fields (a typo must not be silently ignored); replies do not, so an
older shell still reads a newer server's replies.

`decode_request` turns any frame into a request or the `Error` reply naming what is wrong
with it (not JSON, binary, over MAX_FRAME_BYTES, unknown type, a bad field); `encode_reply`
makes a reply's text frame. Both ends import this module; it imports no actor and no
server, so the shell starts without them.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from core.text import one_line
from policy.lifecycle import SymbolRecord
from policy.risk import Position

MAX_FRAME_BYTES = 64 * 1024  # larger frames get an Error reply
# What the websocket layer accepts before closing the connection (1009): above
# MAX_FRAME_BYTES, so that an oversized frame still gets a reply naming the problem.
TRANSPORT_MAX_BYTES = 1024 * 1024


class Frame(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """One frame of either direction, tagged with its "type"."""


RequestId = Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]  # exact in any JSON reader
WireSymbol = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
WireText = Annotated[str, msgspec.Meta(max_length=500)]


class AdminRequest(Frame, frozen=True, forbid_unknown_fields=True):
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


class AdminReply(Frame, frozen=True):
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


_encode = msgspec.json.Encoder().encode
_tags: dict[str, type[AdminRequest]] = {
    msgspec.inspect.type_info(cls).tag: cls  # type: ignore[attr-defined]
    for cls in AnyAdminRequest.__args__
}
REQUEST_TYPES = tuple(sorted(_tags))


def decode_request(frame: str | bytes) -> AnyAdminRequest | ErrorReply:
    """One frame as a request, or the Error reply that names what is wrong with it."""
    if isinstance(frame, bytes | bytearray | memoryview):
        return ErrorReply(id=None, error="binary frames are not accepted; send JSON text")
    size = len(frame.encode("utf-8", "surrogatepass"))
    if size > MAX_FRAME_BYTES:
        return ErrorReply(
            id=None, error=f"frame of {size} bytes is over the {MAX_FRAME_BYTES} bytes limit"
        )
    try:
        raw = msgspec.json.decode(frame)
    except msgspec.DecodeError as exc:
        return ErrorReply(id=None, error=f"not valid JSON: {exc}")
    if not isinstance(raw, dict):
        return ErrorReply(id=None, error='a request must be a JSON object with a "type" field')
    request_id = raw.get("id")
    if (
        not isinstance(request_id, int)
        or isinstance(request_id, bool)
        or not 0 <= request_id < 2**53
    ):
        request_id = None
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in _tags:
        what = 'no "type" field' if kind is None else f"unknown request type {_short(kind)}"
        known = ", ".join(REQUEST_TYPES)
        return ErrorReply(id=request_id, error=f"{what} (known: {known})")
    try:
        return msgspec.convert(raw, type=AnyAdminRequest)
    except msgspec.ValidationError as exc:
        return ErrorReply(id=request_id, error=f"bad {kind} request: {one_line(str(exc))}")


def encode_reply(reply: AdminReply) -> str:
    """A reply as a JSON text frame (bytes would go out as a binary frame)."""
    return _encode(reply).decode()


def request_type(request: AdminRequest) -> str:
    """The request's wire "type" (e.g. "Block"), for messages and logs."""
    return str(msgspec.inspect.type_info(type(request)).tag)  # type: ignore[attr-defined]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
