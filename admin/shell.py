"""The admin shell: `python supervisor.py shell` — a client of the AdminServer, not an actor.

    python supervisor.py shell [--settings FILE]             interactive (history, completion)
    python supervisor.py shell -c "block DOGE/USDT news"     one command
    python supervisor.py shell -c status --json              the raw reply (JSON)


It connects to `admin.host:admin.port` of the settings file (or `--url`), with
the token from TRADEACTORS_ADMIN_TOKEN or else `<data_dir>/admin.token`, the
same places the bot looks. Exit codes: 0 ok, 1 the bot answered with an error
or a refusal, 2 a command or settings file that cannot be used, 3 no connection
or the token was refused, 130 Ctrl-C. Interactive: the code of the last command.

This module runs the shell: the one command or the interactive loop, watches
and Ctrl-C. Its parts: `admin.shell_commands` (the commands, parsed into wire
requests, and completion), `admin.shell_format` (the tables and event lines) and
`admin.client` (the connection); the first two are pure, tested without a server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import TextIO

from websockets.exceptions import ConnectionClosed

from admin.client import AdminClient, ShellError, is_error
from admin.protocol import (
    AdminRequest,
    AnyAdminReply,
    ShutdownRequest,
    SymbolsReply,
    SymbolsRequest,
    UnwatchRequest,
    WatchRequest,
)
from admin.shell_commands import UsageError, completions, help_text, parse_command
from admin.shell_format import format_reply
from admin.token import TOKEN_ENV, TokenError, read_token, token_path
from config.settings import SettingsError, load_settings

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it
DEFAULT_HISTORY = Path.home() / ".tradeactors_shell_history"


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
