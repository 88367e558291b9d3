"""The admin shell's commands: the table of them, and a command line turned into a wire
request (pure; tested without a server). Also what TAB completes and what `help` says.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from typing import NamedTuple

from admin.protocol import (
    AdminRequest,
    BlockRequest,
    CloseAllRequest,
    CloseRequest,
    PauseRequest,
    RefreshUniverseRequest,
    ReloadModelsRequest,
    ResumeRequest,
    RetrainRequest,
    ShutdownRequest,
    StatusRequest,
    SymbolsRequest,
    TrainersRequest,
    UnblockRequest,
    WatchRequest,
)


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
