"""The admin shell: `python supervisor.py shell` — a client of the AdminServer, not an actor.

    python supervisor.py shell [--settings FILE]             interactive (history, completion)
    python supervisor.py shell -c "block DOGE/USDT news"     one command
    python supervisor.py shell -c status --json              the raw reply (JSON)

It connects to `admin.host:admin.port` of the settings file (or `--url`), with
the token from TRADEACTORS_ADMIN_TOKEN or else `<data_dir>/admin.token`, the
same places the bot looks. Exit codes: 0 ok, 1 the bot answered with an error
or a refusal, 2 a command or settings file that cannot be used, 3 no connection
or the token was refused, 130 Ctrl-C. Interactive: the code of the last command.

The pure parts — parsing a command line into a wire request, completion, and
the tables — are plain functions, tested without a server.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple, TextIO

import msgspec
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from admin.protocol import (
    TRANSPORT_MAX_BYTES,
    AdminRequest,
    AnyAdminReply,
    AuthRequest,
    BlockRequest,
    CloseAllRequest,
    CloseRequest,
    ErrorReply,
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
)
from admin.token import TOKEN_ENV, TokenError, read_token, token_path
from config.settings import SettingsError, load_settings
from core.timefmt import format_utc
from policy.lifecycle import SymbolRecord

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it
DEFAULT_HISTORY = Path.home() / ".tradeactors_shell_history"


class Command(NamedTuple):
    name: str
    args: str
    help: str


COMMANDS = (
    Command("status", "", "symbols, models, positions, PnL and trainers"),
    Command("symbols", "", "each symbol's state and why it is or is not traded"),
    Command("block", "SYMBOL [REASON]", "no trading and no training for SYMBOL until unblocked"),
    Command("unblock", "SYMBOL", "let SYMBOL be evaluated again (trades if a model covers it)"),
    Command("retrain", "SYMBOL", "train a new model for SYMBOL now (never two trainers)"),
    Command("reload-models", "", "reload every model version from disk"),
    Command("pause", "", "no new entries; exits and stop losses still managed"),
    Command("resume", "", "allow new entries again"),
    Command("close", "SYMBOL", "sell SYMBOL's open position at market"),
    Command("close-all", "", "sell every open position at market"),
    Command("refresh-universe", "", "refresh the universe now, then evaluate coverage"),
    Command("trainers", "", "the symbols being trained now"),
    Command("watch", "[signals]", "stream transitions, orders, heartbeats ... until Ctrl-C"),
    Command("shutdown", "", "stop the bot in order, as SIGTERM does"),
    Command("help", "", "this list"),
    Command("quit", "", "leave the shell (also Ctrl-D)"),
)
COMMAND_NAMES = tuple(c.name for c in COMMANDS)
_SYMBOL_COMMANDS = ("block", "unblock", "retrain", "close")


class UsageError(Exception):
    """A command line the shell cannot turn into a request; the message says why."""


class ShellError(Exception):
    """No usable connection; the message says what to check."""


# --- commands -> requests (pure) ---------------------------------------------------------------


def parse_command(line: str, request_id: int) -> AdminRequest:
    """A shell command line as a wire request; raises UsageError."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot read {line!r}: {exc}") from None
    if not words:
        raise UsageError("empty command")
    name, args = words[0].lower(), words[1:]
    simple: dict[str, Callable[..., AdminRequest]] = {
        "status": StatusRequest,
        "symbols": SymbolsRequest,
        "reload-models": ReloadModelsRequest,
        "pause": PauseRequest,
        "resume": ResumeRequest,
        "close-all": CloseAllRequest,
        "refresh-universe": RefreshUniverseRequest,
        "trainers": TrainersRequest,
        "shutdown": ShutdownRequest,
    }
    if name in simple:
        _expect(name, args, 0)
        return simple[name](id=request_id)
    if name == "block":
        if not args:
            raise UsageError(_usage("block"))
        reason = " ".join(args[1:]) or "no reason given"
        return BlockRequest(id=request_id, symbol=_symbol(args[0]), reason=reason)
    if name in ("unblock", "retrain", "close"):
        _expect(name, args, 1)
        kind = {"unblock": UnblockRequest, "retrain": RetrainRequest, "close": CloseRequest}[name]
        return kind(id=request_id, symbol=_symbol(args[0]))
    if name == "watch":
        if args not in ([], ["signals"]):
            raise UsageError(_usage("watch"))
        return WatchRequest(id=request_id, signals=bool(args))
    raise UsageError(f"unknown command {name!r}; try 'help'")


def _expect(name: str, args: list[str], count: int) -> None:
    if len(args) != count:
        raise UsageError(_usage(name))


def _usage(name: str) -> str:
    command = next(c for c in COMMANDS if c.name == name)
    return f"usage: {command.name} {command.args}".rstrip()


def _symbol(word: str) -> str:
    symbol = word.upper()
    if "/" not in symbol:
        raise UsageError(f"{word!r} is not a symbol like BTC/USDT")
    return symbol


def completions(line: str, text: str, symbols: Iterable[str]) -> list[str]:
    """What TAB may complete `text` to, `line` being everything before the cursor."""
    before = line[: len(line) - len(text)].split()
    if not before:
        return [c + " " for c in COMMAND_NAMES if c.startswith(text.lower())]
    if len(before) == 1 and before[0].lower() in _SYMBOL_COMMANDS:
        return [s + " " for s in sorted(symbols) if s.startswith(text.upper())]
    if len(before) == 1 and before[0].lower() == "watch":
        return ["signals"] if "signals".startswith(text) else []
    return []


def help_text() -> str:
    width = max(len(f"{c.name} {c.args}") for c in COMMANDS)
    return "\n".join(f"  {f'{c.name} {c.args}'.ljust(width)}  {c.help}" for c in COMMANDS)


# --- tables (pure) -------------------------------------------------------------------------------


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None
) -> str:
    """Columns padded to their widest cell; the last column cut to `width` if given."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False)]
        line = "  ".join([*cells, row[-1]]).rstrip()
        if width is not None and len(line) > width:
            line = line[: max(width - 1, 0)] + "…"
        lines.append(line)
    return "\n".join(lines)


def fmt_time(t: float | None, seconds: bool = False) -> str:
    if t is None:
        return "-"
    return format_utc(t, seconds=seconds, zone=False)


def fmt_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"


def fmt_num(x: float) -> str:
    return f"{x:.6g}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _when(record: SymbolRecord) -> str:
    """The time that matters for a waiting symbol: eligible at, or next retry at."""
    if record.state == "NO_EDGE":
        return fmt_time(record.retry_at)
    return fmt_time(record.eligible_at or record.next_attempt_at)


def why(record: SymbolRecord) -> str:
    """Why the symbol is or is not traded: its reason, and a rejected retrain it trades past."""
    if record.state == "ACTIVE" and record.gate_reasons:
        rejected = "; ".join(record.gate_reasons)
        return f"{record.reason}; its newest retrain was rejected ({rejected})"
    return record.reason


def format_symbols(records: Sequence[SymbolRecord], width: int | None = None) -> str:
    if not records:
        return "No symbols yet (the bot is still starting)."
    rows = [
        [r.symbol, r.state, fmt_time(r.since), _when(r), r.model_version or "-", why(r)]
        for r in records
    ]
    headers = ["SYMBOL", "STATE", "SINCE (UTC)", "ELIGIBLE/RETRY", "MODEL", "REASON"]
    return format_table(headers, rows, width)


def format_status(reply: StatusReply, width: int | None = None) -> str:
    q = reply.quote
    equity = "unknown (exchange not answering)" if reply.equity is None else f"{reply.equity:.2f}"
    head = [
        f"Bot time {fmt_time(reply.now)} UTC, trading "
        + ("PAUSED (no new entries)" if reply.paused else "running"),
        f"Equity {equity} {q}, realized PnL {reply.realized_pnl:+.2f} {q}, "
        f"{reply.orders_placed} orders placed, last candle "
        + (fmt_time(reply.last_tick_at, seconds=True) if reply.last_tick_at else "not yet"),
        f"Trades: {reply.round_trips} round trips, win rate {_pct(reply.win_rate)}, "
        f"fees paid {reply.fees_quote:.2f} {q} (realized PnL is after them)",
    ]
    models = {m.symbol: m for m in reply.models}
    rows = []
    for r in reply.symbols:
        m = models.get(r.symbol)
        rows.append(
            [
                r.symbol,
                r.state,
                _when(r),
                m.version if m else (r.model_version or "-"),
                fmt_age(reply.now - m.trained_at) if m else "-",
                _pct(m.metrics.get("accuracy")) if m else "-",
                _num3(m.metrics.get("auc")) if m else "-",
                why(r),
            ]
        )
    headers = ["SYMBOL", "STATE", "ELIGIBLE/RETRY", "MODEL", "AGE", "ACC", "AUC", "REASON"]
    parts = [
        "\n".join(head),
        format_table(headers, rows, width) if rows else "No symbols yet.",
    ]
    if reply.positions:
        prow = [
            [p.symbol, fmt_num(p.amount), f"{fmt_num(p.entry_price)} {q}", fmt_time(p.opened_at)]
            for p in reply.positions
        ]
        parts.append(
            f"Open positions: {len(prow)}\n"
            + format_table(["SYMBOL", "AMOUNT", "ENTRY", "OPENED (UTC)"], prow, width)
        )
    else:
        parts.append("Open positions: none")
    parts.append("Trainers running: " + (", ".join(reply.trainers) or "none"))
    return "\n\n".join(parts)


def _num3(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def format_event(event: Mapping[str, Any]) -> str:
    """One watched event as one line: time, kind, what happened."""
    kind = str(event.get("type", "?"))
    e = dict(event)
    at = e.get("at")
    when = fmt_time(at, seconds=True) if isinstance(at, int | float) else "-"
    match kind:
        case "SymbolTransition":
            text = f"{e['symbol']}: {e['old']} -> {e['new']} ({e['reason']})"
        case "OrderPlaced":
            text = (
                f"{e['symbol']}: {str(e['side']).upper()} {fmt_num(e['amount'])} at "
                f"{fmt_num(e['price'])} ({e['intent']}: {e['why']}), order {e['client_order_id']}"
            )
            if e.get("net_pnl") is not None:
                text += f", round trip {e['net_pnl']:+.2f} ({e['return_pct']:+.2f} %)"
        case "OrderFailed":
            text = f"{e['symbol']}: {e['intent']} order {e['client_order_id']} failed: {e['error']}"
        case "Heartbeat":
            text = (
                f"{e['active']} active symbols, {e['blocked']} blocked, "
                f"{e['open_positions']} open positions"
            )
        case "TrainerStarted":
            text = f"{e['symbol']}: trainer started"
        case "TrainerFinished":
            text = f"{e['symbol']}: trainer {'done' if e['ok'] else 'failed'}: {e['detail']}"
        case "ModelsReloaded":
            symbols = ", ".join(e["symbols"]) or "no change"
            text = f"models {e['version'] or '-'} ({e['trigger']}): {symbols}"
        case "CoverageChecked":
            text = (
                f"{e['trigger']}: {e['symbols']} symbols, {e['active']} active, "
                f"{e['blocked']} blocked"
            )
        case "UniverseRefreshed":
            added = f", added {', '.join(e['added'])}" if e["added"] else ""
            removed = f", removed {', '.join(e['removed'])}" if e["removed"] else ""
            text = f"{e['size']} symbols{added}{removed}"
        case "SignalProduced":
            text = f"{e['symbol']}: P(up) {e['prob_up']:.3f}"
        case "GateDecided":
            if e["promoted"]:
                text = f"{e['symbol']}: model {e['version']} passed the promotion gate"
            else:
                text = f"{e['symbol']}: model rejected: {'; '.join(e['reasons']) or 'no edge'}"
        case "ActorRestarted":
            text = f"{e['name']} restarted after: {e['error']}"
        case _:
            text = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("type", "at"))
    return f"{when}  {kind:<17} {text}"


def format_reply(reply: AnyAdminReply, width: int | None = None) -> str:
    match reply:
        case StatusReply():
            return format_status(reply, width)
        case SymbolsReply(symbols=records):
            return format_symbols(records, width)
        case TrainersReply(symbols=symbols):
            return "Trainers running: " + (", ".join(symbols) or "none")
        case Reply(ok=True, detail=detail):
            return detail
        case Reply(detail=detail):
            return f"refused: {detail}"
        case ErrorReply(error=error):
            return f"error: {error}"
        case WatchEvent(event=event, dropped=dropped):
            lost = f"  ({dropped} events dropped before this one)" if dropped else ""
            return format_event(event) + lost
    return str(reply)  # pragma: no cover - every reply type is matched above


def is_error(reply: AnyAdminReply) -> bool:
    return isinstance(reply, ErrorReply) or (isinstance(reply, Reply) and not reply.ok)


# --- the connection -------------------------------------------------------------------------------


_decode_reply = msgspec.json.Decoder(AnyAdminReply).decode


class AdminClient:
    """One authenticated websocket connection to the bot (sync client; one request at a time)."""

    def __init__(
        self,
        url: str,
        token: str,
        token_source: str,
        settings_path: str = "settings.yaml",
        timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.token = token
        self.token_source = token_source
        self.settings_path = settings_path
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._stack = contextlib.ExitStack()

    def next_id(self) -> int:
        return next(self._ids)

    def connect(self) -> None:
        stack = contextlib.ExitStack()
        try:  # no proxy: the admin server is this machine's (or a trusted host's)
            ws = stack.enter_context(
                connect(self.url, open_timeout=10, proxy=None, max_size=TRANSPORT_MAX_BYTES)
            )
        except InvalidURI as exc:
            raise ShellError(f"{self.url} is not a websocket address: {exc}") from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise ShellError(self._unreachable(exc)) from None
        self._ws, self._stack = ws, stack
        try:
            _, reply = self.request(AuthRequest(token=self.token))
        except (ConnectionClosed, TimeoutError):
            reply = ErrorReply(id=0, error="connection closed")
        if is_error(reply):
            self.close()
            raise ShellError(
                f"the admin server at {self.url} refused the token from {self.token_source}.\n"
                "Check:\n"
                f"  - the bot takes ${TOKEN_ENV} from its own environment if it is set there,\n"
                "    else admin.token in its data_dir: give the shell the same one\n"
                f"  - is {self.settings_path} the bot's settings file (same data_dir)?"
            )

    def _unreachable(self, exc: BaseException) -> str:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or "timeout"
        return (
            f"cannot reach the bot's admin server at {self.url}: {why.lower()}.\n"
            "Check:\n"
            f"  - is the bot running? (python supervisor.py --settings {self.settings_path})\n"
            f"  - is {self.url} its address? (admin.enabled, admin.host and admin.port in\n"
            f"    {self.settings_path}, or --url)\n"
            f"  - the shell's token comes from {self.token_source}"
        )

    @property
    def ws(self) -> ClientConnection:
        if self._ws is None:
            raise ShellError("not connected")
        return self._ws

    def send(self, request: AdminRequest) -> None:
        self.ws.send(msgspec.json.encode(request).decode())

    def receive(self, timeout: float | None = None) -> tuple[str, AnyAdminReply]:
        frame = self.ws.recv(timeout=timeout)
        text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
        try:
            return text, _decode_reply(text)
        except msgspec.DecodeError as exc:  # a newer or foreign server
            return text, ErrorReply(id=None, error=f"unreadable reply from the bot: {exc}")

    def request(self, request: AdminRequest) -> tuple[str, AnyAdminReply]:
        """Send and wait for the reply with the request's id (events of a watch are skipped)."""
        self.send(request)
        while True:
            text, reply = self.receive(self.timeout)
            if isinstance(reply, WatchEvent):
                continue
            if reply.id in (request.id, None):
                return text, reply

    def events(self) -> Iterator[tuple[str, AnyAdminReply]]:
        """Frames as they come (after a Watch): until the connection closes."""
        while True:
            try:
                yield self.receive(None)
            except ConnectionClosed:
                return

    def close(self) -> None:
        self._stack.close()
        self._ws = None


# --- running the shell ----------------------------------------------------------------------------


class _Output:
    def __init__(self, out: TextIO, err: TextIO, as_json: bool) -> None:
        self.out = out
        self.err = err
        self.as_json = as_json
        self.width = shutil.get_terminal_size().columns if out.isatty() else None

    def reply(self, text: str, reply: AnyAdminReply) -> None:
        if self.as_json:
            print(text, file=self.out, flush=True)
        elif is_error(reply):
            print(format_reply(reply, self.width), file=self.err, flush=True)
        else:
            print(format_reply(reply, self.width), file=self.out, flush=True)

    def say(self, text: str) -> None:
        print(text, file=self.err, flush=True)


def run_shell(
    settings_path: str,
    command: str | None = None,
    as_json: bool = False,
    url: str | None = None,
    history: Path | None = DEFAULT_HISTORY,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    read_line: Callable[[str], str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """The shell's main: one command (`command`) or the interactive loop; the exit code."""
    output = _Output(out or sys.stdout, err or sys.stderr, as_json)
    try:
        settings = load_settings(settings_path)
    except SettingsError as exc:
        output.say(str(exc))
        return EXIT_USAGE
    request: AdminRequest | None = None
    if command is not None and command.strip().lower() == "help":  # needs no bot
        try:
            print(help_text(), file=output.out, flush=True)
        except BrokenPipeError:
            _discard_stdout(output.out)
        return EXIT_OK
    if command is not None:
        try:
            request = parse_command(command, 1)
        except UsageError as exc:
            output.say(str(exc))
            return EXIT_USAGE
    admin = settings.admin
    host = f"[{admin.host}]" if ":" in admin.host else admin.host
    target = url or f"ws://{host}:{admin.port}"
    try:
        token = read_token(settings.data_dir, environ)
    except TokenError as exc:
        output.say(str(exc))
        return EXIT_UNREACHABLE
    if token is None:
        output.say(
            f"no admin token: ${TOKEN_ENV} is not set and {token_path(settings.data_dir)} "
            "does not exist.\nThe bot writes that file at its first start: is it running, "
            f"with the same data_dir as {settings_path}?"
        )
        return EXIT_UNREACHABLE
    client = AdminClient(target, token.value, token.source, settings_path)
    try:
        client.connect()
        if request is not None:
            return _one(client, request, output)
        return _interactive(client, output, read_line, history)
    except ShellError as exc:
        output.say(str(exc))
        return EXIT_UNREACHABLE
    except ConnectionClosed:
        output.say(f"the bot closed the connection ({target}); is it stopping?")
        return EXIT_UNREACHABLE
    except TimeoutError:
        output.say(f"no reply from the bot within {client.timeout:.0f} s")
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        output.say("")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `... | head`: the reader has all it wants
        _discard_stdout(output.out)
        return EXIT_OK
    finally:
        client.close()


def _discard_stdout(out: TextIO) -> None:
    """What is still buffered for a closed pipe goes nowhere, so the exit prints no error."""
    if out is sys.stdout:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@contextlib.contextmanager
def _one_interrupt() -> Iterator[None]:
    """Ctrl-C ends a watch; a second Ctrl-C while the shell is ending it is ignored (it
    would otherwise land in the websocket's closing handshake, as a traceback)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only (an in-process shell in a test thread)
        return
    previous = signal.getsignal(signal.SIGINT)

    def first(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


WATCHING = "watching; Ctrl-C to stop"


def _watch_started(text: str, reply: AnyAdminReply, output: _Output) -> None:
    # Said inside `_one_interrupt`: a person may press Ctrl-C as soon as they read it.
    # The server's reply names its own way to stop (an Unwatch request); a person stops
    # the shell's watch with Ctrl-C, and only that is said
    if output.as_json:
        output.reply(text, reply)
    else:
        output.say(WATCHING)


def _one(client: AdminClient, request: AdminRequest, output: _Output) -> int:
    text, reply = client.request(request)
    if isinstance(request, WatchRequest) and not is_error(reply):
        with _one_interrupt():
            with contextlib.suppress(KeyboardInterrupt):
                _watch_started(text, reply, output)
                for text, event in client.events():
                    output.reply(text, event)
            client.close()
        return EXIT_OK
    output.reply(text, reply)
    return EXIT_REFUSED if is_error(reply) else EXIT_OK


def _interactive(
    client: AdminClient,
    output: _Output,
    read_line: Callable[[str], str] | None,
    history: Path | None,
) -> int:
    symbols: list[str] = []

    def refresh_symbols() -> None:
        _, reply = client.request(SymbolsRequest(id=client.next_id()))
        if isinstance(reply, SymbolsReply):
            symbols[:] = [r.symbol for r in reply.symbols]

    refresh_symbols()
    if read_line is None:
        read_line = input
        _setup_readline(lambda line, text: completions(line, text, symbols), history)
    output.say(
        f"tradeactors admin shell, connected to {client.url} (token from {client.token_source}).\n"
        "Type 'help' for the commands; Tab completes commands and symbols; Ctrl-D leaves."
    )
    status = EXIT_OK
    while True:
        try:
            line = read_line("admin> ").strip()
        except EOFError:
            output.say("")
            break
        except KeyboardInterrupt:
            output.say("")
            continue
        if not line:
            continue
        if line.split()[0].lower() in ("quit", "exit"):
            break
        if line.split()[0].lower() == "help":
            print(help_text(), file=output.out, flush=True)
            continue
        try:
            request = parse_command(line, client.next_id())
        except UsageError as exc:
            output.say(str(exc))
            continue
        try:
            text, reply = client.request(request)
        except KeyboardInterrupt:  # its late reply is skipped: replies are matched by id
            output.say("(interrupted)")
            continue
        status = EXIT_REFUSED if is_error(reply) else EXIT_OK
        if isinstance(request, WatchRequest) and not is_error(reply):
            _watch_until_interrupt(client, output, text, reply)
            refresh_symbols()
            continue
        output.reply(text, reply)
        if isinstance(request, ShutdownRequest) and not is_error(reply):
            break
        refresh_symbols()
    return status


def _watch_until_interrupt(
    client: AdminClient, output: _Output, text: str, reply: AnyAdminReply
) -> None:
    with _one_interrupt():
        try:
            _watch_started(text, reply, output)
            for text, frame in client.events():
                output.reply(text, frame)
        except KeyboardInterrupt:
            pass
        text, reply = client.request(UnwatchRequest(id=client.next_id()))
    output.reply(text, reply)


def _setup_readline(complete: Callable[[str, str], list[str]], history: Path | None) -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover - no readline on this platform: no completion
        return
    matches: list[str] = []

    def completer(text: str, state: int) -> str | None:
        if state == 0:
            matches[:] = complete(readline.get_line_buffer()[: readline.get_endidx()], text)
        return matches[state] if state < len(matches) else None

    readline.set_completer_delims(" \t\n")
    readline.set_completer(completer)
    if "libedit" in (readline.__doc__ or ""):  # pragma: no cover - macOS
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
    if history is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(history)
        readline.set_history_length(1000)
        import atexit

        def save() -> None:
            with contextlib.suppress(OSError):
                readline.write_history_file(history)
                os.chmod(history, 0o600)

        atexit.register(save)
