"""AdminServer: the authenticated websocket through which the admin shell steers the bot.

Not a pykka actor: it runs an asyncio loop (the `websockets` server) in its own
thread, and reaches the actors only through their addresses, with the same
messages anyone else sends (`ask` for replies, `tell` for the supervisor), and
the event `Topic` for `watch`. It never touches an actor's state.

Accepts, as JSON text frames (the wire protocol, admin/protocol.py):
- `Auth` (first frame, within `auth_timeout_s`, constant-time token compare;
  anything else, a wrong token or silence: an `Error` and the connection closed,
  and a log line that never contains the token);
- `Status`, `Symbols`, `Trainers`: queries (coverage `GetSymbols`, store
  `GetModels`, trader `GetTraderStatus`, the trainer directory);
- `Block`, `Unblock`, `Retrain`, `RefreshUniverse` -> coverage; `ReloadModels`
  -> model store; `Pause`, `Resume`, `Close`, `CloseAll` -> trader: each replies
  `Reply(ok, detail)` from the actor's `CommandResult`;
- `Watch`/`Unwatch`: stream the event topic as `WatchEvent` frames;
- `Shutdown`: `StopRequested` to the supervisor (an orderly stop, as SIGTERM).

Input never kills the server: a frame that is not JSON, binary, over 64 KiB, of an
unknown type or with a bad field gets an `Error` naming the problem, and the
connection stays usable. Decoding is admin/protocol.py, the token admin/token.py;
mapping a request to an actor message and building the status reply are plain
functions below the server. What is left (~560 lines) is one piece: the server,
its per-connection session and watch stream share one asyncio loop and the
server's actor addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import msgspec
import pykka
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from actors.base import Topic
from actors.clock import Clock, Mailbox
from actors.messages import (
    BlockSymbol,
    CloseAll,
    CloseSymbol,
    CommandResult,
    Event,
    GetModels,
    GetSymbols,
    GetTraderStatus,
    Message,
    ModelsUpdated,
    Pause,
    RefreshUniverse,
    ReloadModels,
    Resume,
    RetrainSymbol,
    SignalProduced,
    StopRequested,
    SymbolStates,
    TraderStatus,
    UnblockSymbol,
)
from admin.protocol import (
    TRANSPORT_MAX_BYTES,
    AdminReply,
    AdminRequest,
    AuthRequest,
    BlockRequest,
    CloseAllRequest,
    CloseRequest,
    ErrorReply,
    ModelView,
    PauseRequest,
    RefreshUniverseRequest,
    ReloadModelsRequest,
    Reply,
    ResumeRequest,
    RetrainRequest,
    ShutdownRequest,
    StatusReply,
    StatusRequest,
    SymbolsReply,
    SymbolsRequest,
    TrainersReply,
    TrainersRequest,
    UnblockRequest,
    UnwatchRequest,
    WatchEvent,
    WatchRequest,
    decode_request,
    encode_reply,
    request_type,
)
from config.settings import is_loopback

log = logging.getLogger("tradeactors.admin")
# The websockets library's own lines (connection open/closed) repeat what ours say.
_ws_log = logging.getLogger("tradeactors.admin.websocket")
_ws_log.setLevel(logging.WARNING)

WATCH_QUEUE = 1000  # events buffered per watcher before they are dropped (and counted)


class Asker(Protocol):
    """What the server needs of an actor: an `Address` (ask with a timeout)."""

    def ask(self, message: Any, timeout: float = ...) -> Any: ...


# --- the server -------------------------------------------------------------------------


class AdminServer:
    """The websocket endpoint; `start()` binds and returns, `stop()` closes every connection."""

    def __init__(
        self,
        *,
        actors: Mapping[str, Asker],
        events: Topic,
        supervisor: Mailbox,
        trainers: Callable[[], list[str]],
        clock: Clock,
        token: str,
        quote: str,
        host: str = "127.0.0.1",
        port: int = 8765,
        auth_timeout_s: float = 5.0,
        ask_timeout_s: float = 10.0,
    ) -> None:
        missing = {"coverage", "trader", "model_store"} - set(actors)
        if missing:
            raise ValueError(f"AdminServer needs the addresses of {', '.join(sorted(missing))}")
        if not token:
            raise ValueError("AdminServer needs a non-empty token")
        self.actors = actors
        self.events = events
        self.supervisor = supervisor
        self.trainers = trainers
        self.clock = clock
        self._token = token.encode()
        self.quote = quote
        self.host = host
        self.port = port
        self.auth_timeout_s = auth_timeout_s
        self.ask_timeout_s = ask_timeout_s
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._ids = itertools.count(1)

    # --- lifecycle (called from the supervisor's thread) ---------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Bind and serve in a thread; raises OSError when the address cannot be bound."""
        self._thread = threading.Thread(target=self._run, name="admin-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"admin server did not start within {timeout:.0f} s")
        if self._error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise self._error
        if not is_loopback(self.host):
            log.warning(
                "Admin server listening on %s, reachable from other machines "
                "(admin.allow_remote: true): anyone with the token can steer the bot",
                self.url,
            )
        else:
            log.info("Admin server listening on %s", self.url)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listening socket and every connection; idempotent."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("Admin server did not stop within %.0f s", timeout)
            else:
                log.info("Admin server stopped")
        self._thread = None

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(); never kills the process
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                log.exception("Admin server stopped on an error")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            server: Server = await serve(
                self._serve_connection,
                self.host,
                self.port,
                max_size=TRANSPORT_MAX_BYTES,
                logger=_ws_log,
            )
        except OSError as exc:
            why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            self._error = OSError(exc.errno, f"admin server cannot listen on {self.url}: {why}")
            self._ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            await server.wait_closed()

    # --- one connection ---------------------------------------------------------------------

    async def _serve_connection(self, ws: ServerConnection) -> None:
        peer = _peer(ws)
        try:
            if await self._authenticate(ws, peer):
                await _Session(self, ws, peer).run()
        except ConnectionClosed:
            pass
        except Exception:  # a bug here must cost one connection, never the server
            log.exception("Admin: connection from %s failed", peer)

    async def _authenticate(self, ws: ServerConnection, peer: str) -> bool:
        try:
            frame = await asyncio.wait_for(ws.recv(), self.auth_timeout_s)
        except TimeoutError:
            log.warning(
                "Admin: %s sent no Auth within %.1f s; connection closed", peer, self.auth_timeout_s
            )
            await ws.close(1008, "authentication timeout")
            return False
        request = decode_request(frame)
        problem: str | None = None
        if isinstance(request, ErrorReply):
            problem = request.error
        elif not isinstance(request, AuthRequest):
            problem = f"the first frame must be Auth, not {request_type(request)}"
        elif not hmac.compare_digest(request.token.encode(), self._token):
            problem = "wrong token"
        request_id = request.id
        if problem is not None:
            log.warning("Admin: authentication failed from %s (%s)", peer, problem)
            await ws.send(encode_reply(ErrorReply(id=request_id, error="authentication failed")))
            await ws.close(1008, "authentication failed")
            return False
        log.info("Admin: %s authenticated", peer)
        await ws.send(encode_reply(Reply(id=request_id, ok=True, detail="authenticated")))
        return True

    # --- answering (in the server's loop; actor asks run in worker threads) ---------------

    async def answer(self, request: AdminRequest, peer: str) -> AdminReply:
        """The reply to one request that the session does not handle itself."""
        try:
            return await self._answer(request, peer)
        except (pykka.ActorDeadError, pykka.Timeout, ActorError) as exc:
            return ErrorReply(id=request.id, error=_ask_problem(exc, self.ask_timeout_s))
        except Exception as exc:
            log.exception("Admin: %s from %s failed", request_type(request), peer)
            return ErrorReply(id=request.id, error=f"internal error: {type(exc).__name__}: {exc}")

    async def _answer(self, request: AdminRequest, peer: str) -> AdminReply:
        match request:
            case StatusRequest():
                symbols, models, trader = await asyncio.gather(
                    self._ask("coverage", GetSymbols()),
                    self._ask("model_store", GetModels()),
                    self._ask("trader", GetTraderStatus()),
                )
                return status_reply(
                    request.id,
                    now=self.clock.now(),
                    quote=self.quote,
                    states=symbols,
                    models=models,
                    trader=trader,
                    trainers=self.trainers(),
                )
            case SymbolsRequest():
                states = await self._ask("coverage", GetSymbols())
                return SymbolsReply(id=request.id, now=self.clock.now(), symbols=states.records)
            case TrainersRequest():
                return TrainersReply(id=request.id, symbols=tuple(self.trainers()))
            case AuthRequest():
                return ErrorReply(id=request.id, error="already authenticated")
        command = actor_command(request)
        if command is None:
            return ErrorReply(id=request.id, error=f"{request_type(request)} is not handled here")
        actor, message = command
        result = await self._ask(actor, message)
        reply = await self._command_reply(request, result)
        symbol = getattr(request, "symbol", None)
        log.info(
            "%sadmin %s from %s: %s",
            f"{symbol}: " if symbol else "",
            request_type(request),
            peer,
            reply.detail if reply.ok else f"refused: {reply.detail}",
        )
        return reply

    async def _command_reply(self, request: AdminRequest, result: Any) -> Reply:
        if isinstance(result, CommandResult):
            detail = result.detail
            if isinstance(request, UnblockRequest) and result.ok:
                # coverage re-evaluates an unblocked symbol at once: say where it landed
                states: SymbolStates = await self._ask("coverage", GetSymbols())
                now = next((r for r in states.records if r.symbol == request.symbol), None)
                if now is not None:
                    detail += f"; now {now.state} ({now.reason})"
            return Reply(id=request.id, ok=result.ok, detail=detail)
        # every actor command answers a CommandResult: anything else is a bug to see, never
        # a "done" that may not be true
        log.error("Admin: %s got no CommandResult but %r", request_type(request), result)
        return Reply(
            id=request.id, ok=False, detail=f"no answer saying what happened (got {result!r})"
        )

    async def _ask(self, actor: str, message: Message) -> Any:
        try:
            return await asyncio.to_thread(self.actors[actor].ask, message, self.ask_timeout_s)
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            raise ActorError(actor, exc) from exc

    def next_watch_name(self, peer: str) -> str:
        return f"admin-watch:{peer}:{next(self._ids)}"


class ActorError(Exception):
    """An actor that did not answer an admin request (dead or too slow)."""

    def __init__(self, actor: str, cause: BaseException) -> None:
        super().__init__(actor)
        self.actor = actor
        self.cause = cause


class _Session:
    """One authenticated connection: requests answered in order, plus at most one watch."""

    def __init__(self, server: AdminServer, ws: ServerConnection, peer: str) -> None:
        self.server = server
        self.ws = ws
        self.peer = peer
        self.watcher: _Watcher | None = None
        self.stream: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            async for frame in self.ws:
                try:
                    await self._handle(frame)
                except ConnectionClosed:
                    raise
                except Exception as exc:  # a bug costs this request, not the connection
                    log.exception("Admin: a frame from %s failed", self.peer)
                    error = f"internal error: {type(exc).__name__}: {exc}"
                    await self.send(ErrorReply(id=None, error=error))
        finally:
            self._unwatch(None)

    async def _handle(self, frame: str | bytes) -> None:
        request = decode_request(frame)
        if isinstance(request, ErrorReply):
            log.info("Admin: bad frame from %s: %s", self.peer, request.error)
            await self.send(request)
        elif isinstance(request, WatchRequest):
            await self._watch(request)
        elif isinstance(request, UnwatchRequest):
            await self.send(self._unwatch(request.id))
        elif isinstance(request, ShutdownRequest):
            await self._shutdown(request)
        else:
            await self.send(await self.server.answer(request, self.peer))

    async def send(self, reply: AdminReply) -> None:
        await self.ws.send(encode_reply(reply))

    async def _watch(self, request: WatchRequest) -> None:
        if self.watcher is not None:
            error = f"already watching (request {self.watcher.request_id}); send Unwatch first"
            await self.send(ErrorReply(id=request.id, error=error))
            return
        name = self.server.next_watch_name(self.peer)
        queue: asyncio.Queue[Event] = asyncio.Queue(WATCH_QUEUE)
        watcher = _Watcher(name, request.id, asyncio.get_running_loop(), queue, request.signals)
        # subscribed before the reply (nothing published after it is missed), streamed after
        # it (no event overtakes it)
        self.watcher = watcher
        self.server.events.subscribe(name, watcher)
        await self.send(Reply(id=request.id, ok=True, detail="watching; send Unwatch to stop"))
        if self.watcher is watcher:
            self.stream = asyncio.create_task(self._stream(watcher))
        log.info("Admin: %s watches events", self.peer)

    async def _stream(self, watcher: _Watcher) -> None:
        while True:
            event = await watcher.queue.get()
            dropped, watcher.dropped = watcher.dropped, 0
            frame = WatchEvent(
                id=watcher.request_id, event=msgspec.to_builtins(event), dropped=dropped
            )
            try:
                await self.send(frame)
            except ConnectionClosed:
                return
            watcher.sent += 1

    def _unwatch(self, request_id: int | None) -> AdminReply:
        watcher, self.watcher = self.watcher, None
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None
        if watcher is None:
            return ErrorReply(id=request_id, error="not watching")
        self.server.events.unsubscribe(watcher.name)
        return Reply(id=request_id, ok=True, detail=f"stopped watching ({watcher.sent} events)")

    async def _shutdown(self, request: ShutdownRequest) -> None:
        log.warning("Admin: shutdown requested by %s (%s)", self.peer, request.reason)
        await self.send(Reply(id=request.id, ok=True, detail="stopping the bot in order"))
        self.server.supervisor.tell(StopRequested(reason=request.reason))


class _Watcher:
    """A topic subscriber (told from actor threads) feeding one connection's event queue."""

    def __init__(
        self,
        name: str,
        request_id: int,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Event],
        signals: bool,
    ) -> None:
        self.name = name
        self.request_id = request_id
        self.loop = loop
        self.queue = queue
        self.signals = signals
        self.dropped = 0
        self.sent = 0

    def tell(self, message: Any) -> None:
        if not isinstance(message, Event):
            return
        if isinstance(message, SignalProduced) and not self.signals:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the watcher is going away
            self.loop.call_soon_threadsafe(self._put, message)

    def _put(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1


# --- pure parts ------------------------------------------------------------------------------


def actor_command(request: AdminRequest) -> tuple[str, Message] | None:
    """The actor and the message that carry out an admin command (None: not an actor command)."""
    match request:
        case BlockRequest(symbol=symbol, reason=reason):
            return "coverage", BlockSymbol(symbol=symbol, reason=reason)
        case UnblockRequest(symbol=symbol):
            return "coverage", UnblockSymbol(symbol=symbol)
        case RetrainRequest(symbol=symbol):
            return "coverage", RetrainSymbol(symbol=symbol)
        case RefreshUniverseRequest():
            return "coverage", RefreshUniverse()
        case ReloadModelsRequest():
            return "model_store", ReloadModels(reason="admin request")
        case PauseRequest():
            return "trader", Pause()
        case ResumeRequest():
            return "trader", Resume()
        case CloseRequest(symbol=symbol):
            return "trader", CloseSymbol(symbol=symbol)
        case CloseAllRequest():
            return "trader", CloseAll()
    return None


def status_reply(
    request_id: int,
    *,
    now: float,
    quote: str,
    states: SymbolStates,
    models: ModelsUpdated,
    trader: TraderStatus,
    trainers: list[str],
) -> StatusReply:
    views = tuple(
        ModelView(
            symbol=symbol,
            version=model.version,
            trained_at=model.manifest.trained_at_ms / 1000,
            rows=model.manifest.rows,
            metrics={k: _finite(v) for k, v in model.manifest.metrics.items()},
        )
        for symbol, model in sorted(models.models.items())
    )
    return StatusReply(
        id=request_id,
        now=now,
        quote=quote,
        paused=trader.paused,
        symbols=states.records,
        models=views,
        positions=trader.positions,
        realized_pnl=trader.realized_pnl,
        equity=_finite(trader.equity),
        orders_placed=trader.orders_placed,
        last_tick_at=trader.last_tick_at,
        trainers=tuple(trainers),
        fees_quote=trader.fees_quote,
        round_trips=trader.round_trips,
        wins=trader.wins,
        win_rate=trader.win_rate,
    )


def _finite(x: float) -> float | None:
    return x if x == x and x not in (float("inf"), float("-inf")) else None


def _ask_problem(exc: BaseException, timeout: float) -> str:
    actor = exc.actor if isinstance(exc, ActorError) else "an actor"
    cause = exc.cause if isinstance(exc, ActorError) else exc
    if isinstance(cause, pykka.Timeout):
        return f"{actor} did not answer within {timeout:.0f} s; try again"
    return f"{actor} is not running (it may be restarting); try again"


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
