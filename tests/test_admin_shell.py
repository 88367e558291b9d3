"""The admin shell: its pure parts (parsing, completion, tables), the token and settings rules,
and `python supervisor.py shell` against a running AdminServer (in process and as processes).
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.messages import GetSymbols, SymbolStates
from admin.protocol import (
    BlockRequest,
    CloseRequest,
    ModelView,
    PauseRequest,
    StatusReply,
    StatusRequest,
    WatchRequest,
)
from admin.shell import run_shell
from admin.shell_commands import COMMAND_NAMES, UsageError, completions, help_text, parse_command
from admin.shell_format import format_event, format_status, format_symbols, format_table
from admin.token import TOKEN_ENV, TokenError, load_or_create_token, read_token
from config.settings import SettingsError, load_settings
from policy.lifecycle import SymbolRecord, SymbolState
from policy.risk import Position
from supervisor import main
from tests.admin_client import TOKEN, AdminBot
from tests.harness import T0, until

ROOT = Path(__file__).resolve().parents[1]

# --- pure parts -----------------------------------------------------------------------------


def test_command_lines_become_wire_requests() -> None:
    assert parse_command("status", 1) == StatusRequest(id=1)
    assert parse_command("  PAUSE ", 2) == PauseRequest(id=2)
    assert parse_command("block doge/usdt listing news", 3) == BlockRequest(
        id=3, symbol="DOGE/USDT", reason="listing news"
    )
    assert parse_command('block DOGE/USDT "a b"', 4).reason == "a b"  # type: ignore[attr-defined]
    assert parse_command("block DOGE/USDT", 5).reason == "no reason given"  # type: ignore[attr-defined]
    assert parse_command("close eth/usdt", 6) == CloseRequest(id=6, symbol="ETH/USDT")
    assert parse_command("watch signals", 7) == WatchRequest(id=7, signals=True)
    for name in COMMAND_NAMES:
        if name not in ("help", "quit"):
            args = " X/USDT" if name in ("block", "unblock", "retrain", "close") else ""
            assert parse_command(name + args, 9).id == 9
    bad = {
        "": "empty command",
        "frobnicate": "unknown command 'frobnicate'; try 'help'",
        "block": "usage: block SYMBOL [REASON]",
        "unblock": "usage: unblock SYMBOL",
        "retrain BTC/USDT ETH/USDT": "usage: retrain SYMBOL",
        "close BTCUSDT": "'BTCUSDT' is not a symbol like BTC/USDT",
        "status now": "usage: status",
        "watch everything": "usage: watch [signals]",
        'block "BTC/USDT': "cannot read 'block \"BTC/USDT': No closing quotation",
    }
    for line, message in bad.items():
        with pytest.raises(UsageError) as info:
            parse_command(line, 1)
        assert str(info.value) == message


def test_completion_of_commands_and_symbols() -> None:
    symbols = ["BTC/USDT", "BCH/USDT", "ETH/USDT"]
    assert completions("", "", symbols) == [c + " " for c in COMMAND_NAMES]
    assert completions("re", "re", symbols) == [
        "retrain ",
        "reload-models ",
        "resume ",
        "refresh-universe ",
    ]
    assert completions("close-", "close-", symbols) == ["close-all "]
    assert completions("block B", "B", symbols) == ["BCH/USDT ", "BTC/USDT "]
    assert completions("retrain e", "e", symbols) == ["ETH/USDT "]
    assert completions("unblock ", "", symbols) == ["BCH/USDT ", "BTC/USDT ", "ETH/USDT "]
    assert completions("status ", "", symbols) == []
    assert completions("block BTC/USDT ", "", symbols) == []  # the reason is free text
    assert completions("watch s", "s", symbols) == ["signals"]


def test_tables_align_columns_and_cut_only_the_last_one() -> None:
    table = format_table(["A", "LONG HEADER", "WHY"], [["xx", "1", "because"], ["y", "22", "-"]])
    assert table.splitlines() == [
        "A   LONG HEADER  WHY",
        "xx  1            because",
        "y   22           -",
    ]
    cut = format_table(["A", "WHY"], [["x", "a long reason that does not fit"]], width=16)
    assert cut.splitlines()[1] == "x  a long reaso…"


def _status(**changes: Any) -> StatusReply:
    now = T0 + 3600
    records = (
        SymbolRecord(symbol="BTC/USDT", state=SymbolState.ACTIVE, reason="published", since=T0),
        SymbolRecord(
            symbol="PEPE/USDT",
            state=SymbolState.BLOCKED_HISTORY,
            reason="too young",
            since=T0,
            eligible_at=T0 + 1.5 * 86_400,
        ),
        SymbolRecord(
            symbol="USDC/USDT",
            state=SymbolState.RETRY_WAIT,
            reason="fit failed",
            since=T0,
            next_attempt_at=T0 + 600,
        ),
    )
    model = ModelView(
        symbol="BTC/USDT",
        version="v000001",
        trained_at=now - 5400,
        rows=5697,
        metrics={"accuracy": 0.5534, "auc": 0.5612, "folds": 3.0},
    )
    position = Position(symbol="BTC/USDT", amount=0.001666, entry_price=60030.0, opened_at=T0 + 60)
    fields: dict[str, Any] = {
        "id": 1,
        "now": now,
        "quote": "USDT",
        "paused": False,
        "symbols": records,
        "models": (model,),
        "positions": (position,),
        "realized_pnl": -1.234,
        "equity": 9998.77,
        "orders_placed": 3,
        "last_tick_at": T0 + 3542,
        "trainers": ("USDC/USDT",),
        "fees_quote": 0.6012,
        "round_trips": 3,
        "wins": 1,
        "win_rate": 1 / 3,
    }
    fields.update(changes)
    return StatusReply(**fields)


def test_status_reads_as_tables() -> None:
    assert format_status(_status()).splitlines() == [
        "Bot time 2026-11-26 01:00 UTC, trading running",
        "Equity 9998.77 USDT, realized PnL -1.23 USDT, 3 orders placed, "
        "last candle 2026-11-26 00:59:02",
        "Trades: 3 round trips, win rate 33.3%, fees paid 0.60 USDT (realized PnL is after them)",
        "",
        "SYMBOL     STATE            ELIGIBLE/RETRY    MODEL    AGE  ACC    AUC    REASON",
        "BTC/USDT   ACTIVE           -                 v000001  90m  55.3%  0.561  published",
        "PEPE/USDT  BLOCKED_HISTORY  2026-11-27 12:00  -        -    -      -      too young",
        "USDC/USDT  RETRY_WAIT       2026-11-26 00:10  -        -    -      -      fit failed",
        "",
        "Open positions: 1",
        "SYMBOL    AMOUNT    ENTRY       OPENED (UTC)",
        "BTC/USDT  0.001666  60030 USDT  2026-11-26 00:01",
        "",
        "Trainers running: USDC/USDT",
    ]
    paused = format_status(_status(paused=True, positions=(), trainers=(), equity=None))
    assert "trading PAUSED (no new entries)" in paused
    assert "Equity unknown (exchange not answering) USDT" in paused
    assert "Open positions: none" in paused and paused.endswith("Trainers running: none")
    fresh = format_status(_status(round_trips=0, wins=0, win_rate=None, fees_quote=0.0))
    assert "Trades: 0 round trips, win rate -, fees paid 0.00 USDT" in fresh


def test_symbols_say_why_a_symbol_is_not_traded_and_when_it_is_tried_again() -> None:
    no_edge = SymbolRecord(
        symbol="ADA/USDT",
        state=SymbolState.NO_EDGE,
        reason="no edge: AUC 0.49 < 0.5; retry after 2026-11-27 00:00 UTC (1 day of new candles) "
        "or on admin 'retrain'",
        since=T0,
        gate_reasons=("AUC 0.49 < 0.5",),
        rejected_at=T0 - 60,
        retry_at=T0 + 86_400,
    )
    kept = SymbolRecord(
        symbol="BTC/USDT",
        state=SymbolState.ACTIVE,
        reason="model v000001 published",
        since=T0,
        model_version="v000001",
        gate_reasons=("net return -0.2 % <= 0 % in 2 of 3 folds",),
        retry_at=T0 + 86_400,
    )
    assert format_symbols([no_edge, kept]).splitlines() == [
        "SYMBOL    STATE    SINCE (UTC)       ELIGIBLE/RETRY    MODEL    REASON",
        "ADA/USDT  NO_EDGE  2026-11-26 00:00  2026-11-27 00:00  -        no edge: AUC 0.49 < 0.5; "
        "retry after 2026-11-27 00:00 UTC (1 day of new candles) or on admin 'retrain'",
        "BTC/USDT  ACTIVE   2026-11-26 00:00  -                 v000001  model v000001 published; "
        "its newest retrain was rejected (net return -0.2 % <= 0 % in 2 of 3 folds)",
    ]


def test_each_watched_event_is_one_readable_line() -> None:
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "SymbolTransition": (
            {"symbol": "ETH/USDT", "old": "ACTIVE", "new": "BLOCKED_MANUAL", "reason": "news"},
            "ETH/USDT: ACTIVE -> BLOCKED_MANUAL (news)",
        ),
        "OrderPlaced": (
            {"symbol": "BTC/USDT", "client_order_id": "ta1", "side": "buy", "intent": "entry", "amount": 0.001666, "price": 60030.0, "why": "P(up) 0.571"},  # noqa: E501
            "BTC/USDT: BUY 0.001666 at 60030 (entry: P(up) 0.571), order ta1",
        ),
        "OrderPlaced ": (  # a sale that closes a round trip
            {"symbol": "BTC/USDT", "client_order_id": "ta2", "side": "sell", "intent": "exit", "amount": 0.001666, "price": 60300.0, "why": "P(up) 0.41", "net_pnl": 0.2498, "return_pct": 0.2496},  # noqa: E501
            "BTC/USDT: SELL 0.001666 at 60300 (exit: P(up) 0.41), order ta2, round trip +0.25 "
            "(+0.25 %)",
        ),
        "GateDecided": (
            {"symbol": "ADA/USDT", "promoted": False, "reasons": ["AUC 0.49 < 0.5"], "version": None},  # noqa: E501
            "ADA/USDT: model rejected: AUC 0.49 < 0.5",
        ),
        "Heartbeat": (
            {"active": 6, "blocked": 3, "open_positions": 2},
            "6 active symbols, 3 blocked, 2 open positions",
        ),
        "Heartbeat ": (  # one of each: the nouns agree
            {"active": 1, "blocked": 0, "open_positions": 1},
            "1 active symbol, 0 blocked, 1 open position",
        ),
        "TrainerFinished": (
            {"symbol": "SOL/USDT", "ok": False, "detail": "single class"},
            "SOL/USDT: trainer failed: single class",
        ),
        "ModelsReloaded": (
            {"version": "v000004", "symbols": ["ETH/USDT"], "trigger": "published"},
            "models v000004 (published): ETH/USDT",
        ),
        "Unknown": ({"x": 1}, "x=1"),
    }  # fmt: skip
    for kind, (fields, text) in cases.items():
        line = format_event({"type": kind.strip(), "at": T0 + 61, **fields})
        assert line == f"2026-11-26 00:01:01  {kind.strip():<17} {text}"


# --- the token and the settings ------------------------------------------------------------


def test_token_file_is_created_once_with_mode_0600_and_the_environment_wins(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "var"
    assert read_token(data, environ={}) is None
    token = load_or_create_token(data, environ={})
    path = data / "admin.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token.value) >= 40 and token.source == f"file {path}"
    assert token.value not in caplog.text
    assert load_or_create_token(data, environ={}) == token  # not replaced at the next start
    assert read_token(data, environ={}) == token  # what the shell reads
    env = {TOKEN_ENV: "from-the-environment"}
    assert load_or_create_token(data, environ=env).value == "from-the-environment"
    assert read_token(data, environ=env).source == f"environment variable {TOKEN_ENV}"  # type: ignore[union-attr]
    assert read_token(data, environ={TOKEN_ENV: "  "}) == token  # blank: not set
    path.chmod(0o644)
    caplog.set_level(logging.WARNING)
    load_or_create_token(data, environ={})
    assert "is readable by other users (mode 644); chmod 600 it" in caplog.text
    path.write_text("\n")
    with pytest.raises(TokenError, match="is empty; delete it"):
        read_token(data, environ={})


def _settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def test_a_non_loopback_admin_host_needs_allow_remote(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        path = _settings_file(tmp_path, f"admin: {{host: '{host}'}}\n")
        assert load_settings(path).admin.host == host
    for host in ("0.0.0.0", "192.168.1.10", "bot.example.com", "::"):
        path = _settings_file(tmp_path, f"admin: {{host: '{host}'}}\n")
        with pytest.raises(SettingsError) as info:
            load_settings(path)
        assert str(info.value) == (
            f"{path}: admin.host {host} is not a loopback address; set admin.allow_remote: true "
            "to accept connections from other machines - at $.admin"
        )
    path = _settings_file(tmp_path, "admin: {host: 0.0.0.0, allow_remote: true}\n")
    assert load_settings(path).admin.allow_remote is True
    bad = _settings_file(tmp_path, "admin: {host: 0.0.0.0}\n")
    assert main(["--settings", str(bad)]) == 2  # the bot refuses to start
    assert main(["shell", "--settings", str(bad), "-c", "status"]) == 2


# --- the shell against a running server -----------------------------------------------------------


class Running(AdminBot):
    """A bot with its admin server, the token in its data folder, and a settings file for it."""

    def __init__(self, tmp_path: Path, symbols: list[str], **sections: Any) -> None:
        super().__init__(tmp_path, symbols, **sections)
        data = Path(self.bot.settings.data_dir)
        (data / "admin.token").write_text(TOKEN + "\n")
        self.settings = tmp_path / "settings.yaml"
        self.settings.write_text(f"data_dir: {data}\nadmin: {{port: {self.server.port}}}\n")

    def states(self) -> dict[str, SymbolState]:
        reply: SymbolStates = self.bot.ask("coverage", GetSymbols())
        return {r.symbol: r.state for r in reply.records}

    def shell(self, command: str | None = None, **kwargs: Any) -> tuple[int, str, str]:
        """run_shell in this process, its output captured: (exit code, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        code = run_shell(str(self.settings), command, out=out, err=err, history=None, **kwargs)
        return code, out.getvalue(), err.getvalue()


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    r = Running(tmp_path, ["BTC/USDT", "ETH/USDT", "PEPE/USDT"])
    yield r
    r.stop()


def test_shell_c_runs_one_command_and_exits_non_zero_on_an_error_reply(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = str(running.settings)
    assert main(["shell", "--settings", settings, "-c", "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Bot time 2026-11-26 00:00 UTC, trading running\n")
    assert "BTC/USDT   ACTIVE" in out and "PEPE/USDT  BLOCKED_HISTORY  2026-11-27 12:00" in out
    assert main(["--settings", settings, "shell", "-c", "block eth/usdt listing news"]) == 0
    assert capsys.readouterr().out == (
        "ETH/USDT: ACTIVE -> BLOCKED_MANUAL (blocked by admin: listing news)\n"
    )
    assert running.states()["ETH/USDT"] is SymbolState.BLOCKED_MANUAL
    assert main(["shell", "--settings", settings, "-c", "block NOPE/USDT"]) == 1
    assert capsys.readouterr().err == "refused: unknown symbol NOPE/USDT\n"
    assert main(["shell", "--settings", settings, "-c", "frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_shell_json_prints_the_raw_replies(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = str(running.settings)
    assert main(["shell", "--settings", settings, "--json", "-c", "symbols"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["type"] == "SymbolsReply" and reply["id"] == 1
    assert [(s["symbol"], s["state"]) for s in reply["symbols"]] == [
        ("BTC/USDT", "ACTIVE"),
        ("ETH/USDT", "ACTIVE"),
        ("PEPE/USDT", "BLOCKED_HISTORY"),
    ]
    assert main(["shell", "--settings", settings, "--json", "-c", "unblock BTC/USDT"]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "type": "Reply",
        "id": 1,
        "ok": False,
        "detail": "BTC/USDT is ACTIVE, not blocked",
    }


def test_shell_says_what_to_check_when_it_cannot_connect(
    running: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    code, _, err = running.shell(command="status", url=f"ws://127.0.0.1:{free}")
    assert code == 3
    token_file = Path(running.bot.settings.data_dir) / "admin.token"
    assert err.splitlines() == [
        f"cannot reach the bot's admin server at ws://127.0.0.1:{free}: connection refused.",
        "Check:",
        f"  - is the bot running? (python supervisor.py --settings {running.settings})",
        f"  - is ws://127.0.0.1:{free} its address? (admin.enabled, admin.host and admin.port in",
        f"    {running.settings}, or --url)",
        f"  - the shell's token comes from file {token_file}",
    ]
    code, _, err = running.shell(command="status", environ={TOKEN_ENV: "not-the-token"})
    assert code == 3
    assert err.startswith(
        f"the admin server at {running.url} refused the token from environment variable "
        f"{TOKEN_ENV}.\nCheck:\n  - the bot takes ${TOKEN_ENV} from its own environment"
    )
    assert "not-the-token" not in err
    token_file.unlink()
    code, _, err = running.shell(command="status")
    assert code == 3
    assert err.startswith(f"no admin token: ${TOKEN_ENV} is not set and {token_file} does not")


def test_interactive_shell_runs_commands_until_quit(running: Running) -> None:
    lines = iter(["help", "", "status", "block pepe/usdt too young anyway", "frob", "trainers"])

    def read_line(prompt: str) -> str:
        assert prompt == "admin> "
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    code, out, err = running.shell(read_line=read_line)
    assert code == 0
    assert "  block SYMBOL [REASON]  no trading and no training for SYMBOL until unblocked" in out
    assert "Trainers running: none" in out
    assert (
        "PEPE/USDT: BLOCKED_HISTORY -> BLOCKED_MANUAL (blocked by admin: too young anyway)" in out
    )
    assert err.startswith(f"tradeactors admin shell, connected to {running.url} (token from file")
    assert "unknown command 'frob'; try 'help'" in err
    assert running.states()["PEPE/USDT"] is SymbolState.BLOCKED_MANUAL


def test_shell_c_watch_streams_until_the_bot_goes_away(running: Running) -> None:
    out, err = io.StringIO(), io.StringIO()
    codes: list[int] = []

    def watch() -> None:
        codes.append(run_shell(str(running.settings), "watch", out=out, err=err, history=None))

    watching = threading.Thread(target=watch)
    watching.start()
    until(lambda: err.getvalue() == "watching; Ctrl-C to stop\n", "the watch started")
    other = running.client()
    other.call("Block", symbol="ETH/USDT", reason="watch me")
    line = "SymbolTransition  ETH/USDT: ACTIVE -> BLOCKED_MANUAL (blocked by admin: watch me)"
    until(lambda: line in out.getvalue(), f"{line!r} printed", timeout_s=30)
    running.server.stop()  # the bot goes away: the watch ends, without an error
    watching.join(timeout=30)
    assert codes == [0]


def test_shell_c_help_needs_no_bot(tmp_path: Path) -> None:
    settings = _settings_file(tmp_path, f"data_dir: {tmp_path / 'nowhere'}\n")
    out, err = io.StringIO(), io.StringIO()
    assert run_shell(str(settings), "help", out=out, err=err, history=None) == 0
    assert out.getvalue() == help_text() + "\n" and err.getvalue() == ""
    assert "watch [signals]" in out.getvalue()


def _shell_process(running: Running, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV} | {"PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "supervisor.py", "shell", "--settings", str(running.settings), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_a_closed_pipe_ends_the_shell_quietly(running: Running) -> None:
    shell = _shell_process(running, "--json", "-c", "symbols")
    assert shell.stdout is not None and shell.stderr is not None
    shell.stdout.close()  # `| head` that has already read enough: the reply meets a closed pipe
    assert shell.wait(timeout=60) == 0
    assert shell.stderr.read() == ""


@pytest.mark.slow
def test_double_ctrl_c_during_watch_ends_it_without_a_traceback(running: Running) -> None:
    shell = _shell_process(running, "-c", "watch")
    assert shell.stderr is not None and shell.stdout is not None
    assert shell.stderr.readline() == "watching; Ctrl-C to stop\n"
    shell.send_signal(signal.SIGINT)
    shell.send_signal(signal.SIGINT)
    assert shell.wait(timeout=60) == 0
    assert shell.stderr.read() == "" and shell.stdout.read() == ""


def test_several_shells_at_once(running: Running) -> None:
    commands = ["status", "block BTC/USDT a", "block ETH/USDT b", "symbols", "trainers", "pause"]
    results: dict[str, tuple[int, str, str]] = {}

    def one(command: str) -> None:
        results[command] = running.shell(command=command)

    threads = [threading.Thread(target=one, args=(c,)) for c in commands * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert {c: r[0] for c, r in results.items()} == dict.fromkeys(commands, 0)
    assert running.states()["BTC/USDT"] is SymbolState.BLOCKED_MANUAL
    assert running.states()["ETH/USDT"] is SymbolState.BLOCKED_MANUAL
    assert results["pause"][1] == "paused: no new entries, exits still managed\n"


# --- two real processes: the bot, and the shell ---------------------------------------------


@pytest.mark.slow
def test_bot_and_shell_as_separate_processes(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        f"data_dir: {tmp_path / 'var'}\n"
        "universe: {mode: static, symbols: [BTC/USDT, PEPE/USDT]}\n"
        "training: {window_days: 3, max_iter: 30}\n"
        # every model promoted: the shell is under test, not the edge
        "promotion: {min_net_return_pct: -100, min_auc: 0}\n"
        f"admin: {{port: {port}}}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV} | {"PYTHONUNBUFFERED": "1"}
    bot = subprocess.Popen(
        [sys.executable, "supervisor.py", "--settings", str(settings)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    listening, active = threading.Event(), threading.Event()

    def read() -> None:
        assert bot.stdout is not None
        for line in bot.stdout:
            lines.append(line)
            if "Admin server listening on" in line:
                listening.set()
            if "BTC/USDT: TRAINING -> ACTIVE" in line:
                active.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def shell(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "supervisor.py", "shell", "--settings", str(settings), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    try:
        assert listening.wait(timeout=60), "".join(lines)
        token = tmp_path / "var" / "admin.token"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert active.wait(timeout=120), "".join(lines)
        status = shell("-c", "status")
        assert status.returncode == 0, status.stderr
        assert (
            "BTC/USDT   ACTIVE" in status.stdout and "PEPE/USDT  BLOCKED_HISTORY" in status.stdout
        )
        blocked = shell("-c", "block BTC/USDT from another process", "--json")
        assert json.loads(blocked.stdout)["ok"] is True
        stop = shell("-c", "shutdown")
        assert stop.returncode == 0 and stop.stdout == "stopping the bot in order\n"
        assert bot.wait(timeout=60) == 0
    finally:
        if bot.poll() is None:
            bot.send_signal(signal.SIGKILL)
    reader.join(timeout=10)
    text = "".join(lines)
    assert f"Admin server listening on ws://127.0.0.1:{port}" in text
    assert "BTC/USDT: admin Block from 127.0.0.1:" in text
    assert "Stopping (admin shutdown): coverage, trainers, trader, market data, model store" in text
    assert text.index("Admin server stopped") < text.index("Stopped cleanly.")
    assert token.read_text().strip() not in text
    assert "Traceback" not in text
