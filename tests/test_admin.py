"""The admin websocket against real actors on a virtual clock: every command's effect is
observed in the actors, authentication refuses everything else, and no input kills the server.

Real websocket connections on 127.0.0.1 (a free port each time); time passes only by
`clock.advance` + `bot.settle()`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from actors.messages import (
    CoverageChecked,
    GetSymbols,
    ModelsReloaded,
    OrderPlaced,
    SignalProduced,
    StopRequested,
    SymbolStates,
    TrainerStarted,
    UniverseRefreshed,
)
from admin.protocol import MAX_FRAME_BYTES, AdminRequest, ErrorReply, decode_request
from exchange.port import ExchangeRoles
from exchange.types import TransientExchangeError
from policy.lifecycle import DAY_S, SymbolState
from policy.risk import Intent
from tests.admin_client import TOKEN, AdminBot
from tests.harness import EVERY_CANDLE, T0, Bot, Stalling
from tests.harness import HOLD as HOLD_ONE

HOLD = {**HOLD_ONE, "max_open_positions": 10}

MakeAdmin = Callable[..., AdminBot]


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[MakeAdmin]:
    made: list[AdminBot] = []

    def make(symbols: list[str], **options: Any) -> AdminBot:
        a = AdminBot(tmp_path / f"bot{len(made)}", symbols, **options)
        made.append(a)
        return a

    yield make
    for a in made:
        a.stop()


def states(bot: Bot) -> dict[str, SymbolState]:
    reply: SymbolStates = bot.ask("coverage", GetSymbols())
    return {r.symbol: r.state for r in reply.records}


# --- each command, observed in the actors -----------------------------------------------------


def test_status_reports_states_models_positions_pnl_and_trainers(admin: MakeAdmin) -> None:
    a = admin(["BTC/USDT", "PEPE/USDT"], trading=HOLD)
    a.bot.run(120)
    status = a.client().call("Status")
    assert status["type"] == "StatusReply"
    assert status["now"] == a.bot.clock.now() and status["quote"] == "USDT"
    by_symbol = {s["symbol"]: s for s in status["symbols"]}
    assert by_symbol["BTC/USDT"]["state"] == "ACTIVE"
    pepe = by_symbol["PEPE/USDT"]
    assert pepe["state"] == "BLOCKED_HISTORY" and pepe["eligible_at"] == T0 + 1.5 * DAY_S
    assert "12.5 days of history < 14 minimum" in pepe["reason"]
    (model,) = status["models"]
    assert model["symbol"] == "BTC/USDT" and model["version"] == "v000001"
    assert 0.0 < model["metrics"]["accuracy"] < 1.0 and 0.0 < model["metrics"]["auc"] < 1.0
    assert model["trained_at"] > 0 and model["rows"] > 1000
    (position,) = status["positions"]  # HOLD: bought on the first candle, held since
    assert position["symbol"] == "BTC/USDT" and position["amount"] > 0
    assert status["orders_placed"] == 1 and status["paused"] is False
    assert status["equity"] == pytest.approx(10_000, rel=0.01)
    assert status["realized_pnl"] == 0.0 and status["trainers"] == []


def test_block_stops_signals_and_entries_and_unblock_brings_them_back(admin: MakeAdmin) -> None:
    a = admin(["BTC/USDT", "ETH/USDT"], trading=EVERY_CANDLE)
    bot, c = a.bot, a.client()
    bot.run(300)
    reply = c.call("Block", symbol="ETH/USDT", reason="listing news")
    assert reply == {
        "type": "Reply",
        "id": reply["id"],
        "ok": True,
        "detail": "ETH/USDT: ACTIVE -> BLOCKED_MANUAL (blocked by admin: listing news)",
    }
    assert states(bot)["ETH/USDT"] is SymbolState.BLOCKED_MANUAL
    bot.events.clear()
    bot.run(900)
    eth = [e for e in bot.events.items if getattr(e, "symbol", None) == "ETH/USDT"]
    assert not [e for e in eth if isinstance(e, SignalProduced)]
    assert not [e for e in eth if isinstance(e, OrderPlaced) and e.intent is Intent.ENTRY]
    assert len([o for o in bot.events.of(OrderPlaced) if o.symbol == "BTC/USDT"]) >= 14
    reply = c.call("Unblock", symbol="ETH/USDT")
    assert reply["ok"] and "; now ACTIVE (model v00000" in reply["detail"]
    bot.events.clear()
    bot.run(300)
    assert len([o for o in bot.events.of(OrderPlaced) if o.symbol == "ETH/USDT"]) >= 4
    refused = c.call("Unblock", symbol="ETH/USDT")
    assert refused["ok"] is False and refused["detail"] == "ETH/USDT is ACTIVE, not blocked"
    unknown = c.call("Block", symbol="NOPE/USDT")
    assert unknown["ok"] is False and unknown["detail"] == "unknown symbol NOPE/USDT"


def test_blocked_symbol_is_not_trained_when_its_history_becomes_enough(admin: MakeAdmin) -> None:
    a = admin(["PEPE/USDT"])  # 12.5 days of history at T0: eligible at T0 + 1.5 days
    bot, c = a.bot, a.client()
    assert c.call("Block", symbol="PEPE/USDT", reason="rug risk")["ok"]
    bot.run(2 * DAY_S, step=3600)
    assert bot.events.of(TrainerStarted) == []
    assert states(bot) == {"PEPE/USDT": SymbolState.BLOCKED_MANUAL}
    retrain = c.call("Retrain", symbol="PEPE/USDT")
    assert retrain["ok"] is False
    assert retrain["detail"] == "PEPE/USDT is blocked by admin; unblock it first"
    reply = c.call("Unblock", symbol="PEPE/USDT")
    assert reply["ok"]
    assert reply["detail"].endswith("now TRAINING (14.5 days of history >= 14 minimum, no model)")
    bot.settle()
    assert [e.symbol for e in bot.events.of(TrainerStarted)] == ["PEPE/USDT"]
    assert states(bot) == {"PEPE/USDT": SymbolState.ACTIVE}


def test_pause_stops_entries_but_exits_are_still_managed_and_resume_restarts_them(
    admin: MakeAdmin,
) -> None:
    a = admin(["BTC/USDT", "SOL/USDT"], trading=EVERY_CANDLE)
    bot, c = a.bot, a.client()
    bot.run(120)
    if not c.call("Status")["positions"]:
        bot.run(60)  # positions alternate: open on one candle, closed on the next
    held = {p["symbol"] for p in c.call("Status")["positions"]}
    assert held == {"BTC/USDT", "SOL/USDT"}
    paused = c.call("Pause")
    assert paused["ok"] and paused["detail"] == "paused: no new entries, exits still managed"
    bot.events.clear()
    bot.run(600)
    orders = bot.events.of(OrderPlaced)
    assert [o for o in orders if o.intent is Intent.ENTRY] == []
    assert sorted(o.symbol for o in orders) == ["BTC/USDT", "SOL/USDT"]  # the two exits
    assert {o.intent for o in orders} == {Intent.EXIT}
    status = c.call("Status")
    assert status["paused"] is True and status["positions"] == []
    assert c.call("Resume")["detail"] == "resumed"
    bot.events.clear()
    bot.run(120)
    entries = [o for o in bot.events.of(OrderPlaced) if o.intent is Intent.ENTRY]
    assert {o.symbol for o in entries} == {"BTC/USDT", "SOL/USDT"}


def test_close_and_close_all_sell_open_positions(admin: MakeAdmin) -> None:
    a = admin(["BTC/USDT", "ETH/USDT", "SOL/USDT"], trading=HOLD)
    bot, c = a.bot, a.client()
    bot.run(120)
    assert {p["symbol"] for p in c.call("Status")["positions"]} == {
        "BTC/USDT",
        "ETH/USDT",
        "SOL/USDT",
    }
    bot.events.clear()
    assert c.call("Close", symbol="ETH/USDT")["detail"] == "ETH/USDT: position closed"
    (close,) = bot.events.of(OrderPlaced)
    assert close.symbol == "ETH/USDT" and close.intent is Intent.CLOSE and close.side == "sell"
    again = c.call("Close", symbol="ETH/USDT")
    assert again["ok"] is False and again["detail"] == "ETH/USDT: no open position"
    closed = c.call("CloseAll")
    assert closed["ok"] and closed["detail"] == "closed 2 positions"
    status = c.call("Status")
    assert status["positions"] == [] and status["realized_pnl"] != 0.0
    assert [o.intent for o in bot.events.of(OrderPlaced)] == [Intent.CLOSE] * 3


def test_a_close_is_answered_when_the_stalled_exchange_answers_and_status_meanwhile(
    admin: MakeAdmin,
) -> None:
    stalling: list[Stalling] = []

    def roles(paper: Any) -> ExchangeRoles:
        stalling.append(Stalling(paper))
        return ExchangeRoles.single(paper)._replace(orders=stalling[0])

    a = admin(["BTC/USDT", "ETH/USDT"], trading=HOLD, roles=roles)
    bot, closer, other = a.bot, a.client(), a.client()
    bot.run(120)
    orders = stalling[0]
    orders.hold("create_order")
    closer.send({"type": "Close", "id": 1, "symbol": "ETH/USDT"})
    assert orders.entered["create_order"].wait(30)
    status = other.call("Status")  # needs the trader, which is not waiting on the exchange
    assert status["type"] == "StatusReply"
    assert {p["symbol"] for p in status["positions"]} == {"BTC/USDT", "ETH/USDT"}
    orders.release("create_order")
    assert closer.reply() == {
        "type": "Reply",
        "id": 1,
        "ok": True,
        "detail": "ETH/USDT: position closed",
    }
    assert {p["symbol"] for p in other.call("Status")["positions"]} == {"BTC/USDT"}


def test_retrain_goes_through_coverage_and_never_starts_a_second_trainer(
    admin: MakeAdmin,
) -> None:
    a = admin(["ETH/USDT"])
    bot, c = a.bot, a.client()
    assert states(bot) == {"ETH/USDT": SymbolState.ACTIVE}
    # hold the retraining at its start (coverage knows the listing time already; only the
    # trainer asks) until the test has asked again
    gate, downloading = threading.Event(), threading.Event()
    history_start = bot.exchange.history_start_ms

    def stalled(symbol: str) -> int | None:
        downloading.set()
        gate.wait(timeout=30)
        return history_start(symbol)

    bot.exchange.history_start_ms = stalled  # type: ignore[method-assign]
    bot.events.clear()
    reply = c.call("Retrain", symbol="ETH/USDT")
    assert reply["detail"] == (
        "ETH/USDT: ACTIVE, retraining requested by admin; still trading meanwhile"
    )
    assert downloading.wait(timeout=30)
    for _ in range(3):
        again = c.call("Retrain", symbol="ETH/USDT")
        assert again["ok"] is False and again["detail"] == "ETH/USDT is already training"
    assert c.call("Trainers")["symbols"] == ["ETH/USDT"]
    assert c.call("Status")["trainers"] == ["ETH/USDT"]
    gate.set()
    bot.settle()
    assert [e.symbol for e in bot.events.of(TrainerStarted)] == ["ETH/USDT"]
    assert c.call("Trainers")["symbols"] == []
    assert [m["version"] for m in c.call("Status")["models"]] == ["v000002"]


def test_reload_models_and_refresh_universe_reach_their_actors(admin: MakeAdmin) -> None:
    a = admin(["BTC/USDT", "PEPE/USDT"])
    bot, c = a.bot, a.client()
    bot.events.clear()
    reply = c.call("ReloadModels")
    assert reply["ok"] and reply["detail"] == "reloaded: 1 model, newest v000001"
    bot.settle()
    assert [r.trigger for r in bot.events.of(ModelsReloaded)] == ["admin"]
    reply = c.call("RefreshUniverse")
    assert reply["detail"] == "universe refreshed and evaluated: 2 symbols"
    bot.settle()
    assert len(bot.events.of(UniverseRefreshed)) == 1
    assert [e.trigger for e in bot.events.of(CoverageChecked)] == ["universe"]


def test_reload_models_and_refresh_universe_say_when_they_failed(admin: MakeAdmin) -> None:
    """Both answered "done" whatever happened: a refused model or an exchange that did not
    answer was only in the log."""
    a = admin(["BTC/USDT", "PEPE/USDT"])
    bot, c = a.bot, a.client()
    models_dir = Path(bot.settings.data_dir) / "models"
    (models_dir / "v000002").mkdir()  # a version without its manifest
    reply = c.call("ReloadModels")
    assert not reply["ok"]
    assert reply["detail"].startswith("reloaded with 1 version refused (")
    assert reply["detail"].endswith("): serving 1 model, newest v000001")

    def down() -> Any:
        raise TransientExchangeError("paper: connection refused")

    bot.exchange.load_markets = down  # type: ignore[method-assign]
    bot.events.clear()
    reply = c.call("RefreshUniverse")
    assert reply == {
        "type": "Reply",
        "id": reply["id"],
        "ok": False,
        "detail": "universe refresh failed, kept 2 symbols: paper: connection refused",
    }
    bot.settle()
    assert bot.events.of(UniverseRefreshed) == [] and bot.events.of(CoverageChecked) == []


def test_watch_streams_transitions_orders_and_heartbeats_until_unwatch(admin: MakeAdmin) -> None:
    a = admin(["BTC/USDT", "ETH/USDT"], trading=EVERY_CANDLE)
    bot, watcher, other = a.bot, a.client(), a.client()
    assert watcher.call("Watch", id=7)["detail"] == "watching; send Unwatch to stop"
    other.call("Block", symbol="ETH/USDT", reason="test")
    bot.run(bot.settings.heartbeat_s)
    watcher.call("Status")  # a barrier: every event published so far was sent before this reply
    kinds = [e["event"]["type"] for e in watcher.events]
    assert {e["id"] for e in watcher.events} == {7}
    transition = watcher.events[0]["event"]
    assert transition == {
        "type": "SymbolTransition",
        "at": T0,
        "symbol": "ETH/USDT",
        "old": "ACTIVE",
        "new": "BLOCKED_MANUAL",
        "reason": "blocked by admin: test",
    }
    assert kinds.count("OrderPlaced") >= 9 and kinds.count("Heartbeat") == 1
    assert "SignalProduced" not in kinds  # only with signals: true
    order = next(e["event"] for e in watcher.events if e["event"]["type"] == "OrderPlaced")
    assert order["symbol"] == "BTC/USDT" and order["intent"] in ("entry", "exit")
    assert watcher.call("Watch")["error"].startswith("already watching (request 7)")
    stopped = watcher.call("Unwatch")
    assert stopped["ok"] and stopped["detail"] == f"stopped watching ({len(watcher.events)} events)"
    watcher.events.clear()
    bot.run(300)
    watcher.call("Status")
    assert watcher.events == []
    assert watcher.call("Unwatch")["error"] == "not watching"
    watcher.call("Watch", signals=True)
    bot.run(60)
    watcher.call("Status")
    assert "SignalProduced" in {e["event"]["type"] for e in watcher.events}


def test_shutdown_asks_the_supervisor_to_stop_in_order(admin: MakeAdmin) -> None:
    a = admin(["BTC/USDT"])
    reply = a.client().call("Shutdown")
    assert reply["ok"] and reply["detail"] == "stopping the bot in order"
    stop = a.bot.system.mailbox.queue.get(timeout=10)
    assert stop == StopRequested(reason="admin shutdown")


def test_an_actor_that_does_not_answer_gives_an_error_and_the_connection_lives_on(
    admin: MakeAdmin,
) -> None:
    a = admin(["BTC/USDT"])
    c = a.client()
    trader = a.bot.system.addresses["trader"].ref
    assert trader is not None
    trader.stop()  # as between a crash and its restart
    reply = c.call("Pause")
    assert reply["type"] == "Error"
    assert reply["error"] == "trader is not running (it may be restarting); try again"
    assert c.call("Status")["type"] == "Error"
    assert c.call("Symbols")["type"] == "SymbolsReply"


# --- authentication -----------------------------------------------------------------------------


def _refused(a: AdminBot, first: str | bytes | None) -> tuple[dict[str, Any] | None, int | None]:
    """Open a connection, send `first` (or nothing); the refusal frame (if any) and close code."""
    with connect(a.url, proxy=None) as ws:
        if first is not None:
            ws.send(first)
        reply: dict[str, Any] | None = None
        try:
            reply = json.loads(ws.recv(timeout=10))
            ws.recv(timeout=10)  # the server closes right after its refusal
        except ConnectionClosed:
            pass
        return reply, ws.close_code


def test_no_token_or_a_wrong_token_gets_nothing_but_a_refusal(
    admin: MakeAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tradeactors")
    a = admin(["BTC/USDT"])
    wrong = "wrong-token-of-similar-length-000"
    attempts: list[str | bytes] = [
        json.dumps({"type": "Block", "id": 1, "symbol": "BTC/USDT"}),  # no Auth at all
        json.dumps({"type": "Auth", "id": 2, "token": wrong}),
        json.dumps({"type": "Auth", "id": 3, "token": ""}),
        json.dumps({"type": "Auth", "id": 4, "token": TOKEN[:-1]}),
        json.dumps({"type": "Auth", "id": 5}),
        b"\x00binary",
        "not json",
    ]
    for first in attempts:
        reply, code = _refused(a, first)
        assert reply is not None and reply["type"] == "Error", first
        assert reply["error"] == "authentication failed"
        assert code == 1008
    assert states(a.bot) == {"BTC/USDT": SymbolState.ACTIVE}  # the Block was not obeyed
    failures = [r for r in caplog.records if "authentication failed" in r.getMessage()]
    assert len(failures) == len(attempts)
    assert "(wrong token)" in failures[1].getMessage()
    assert "the first frame must be Auth, not Block" in failures[0].getMessage()
    assert wrong not in caplog.text and TOKEN not in caplog.text and TOKEN[:-1] not in caplog.text


def test_a_connection_that_does_not_authenticate_in_time_is_closed(
    admin: MakeAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tradeactors")
    a = admin(["BTC/USDT"], auth_timeout_s=0.2)
    reply, code = _refused(a, None)
    assert reply is None and code == 1008
    assert "sent no Auth within 0.2 s; connection closed" in caplog.text
    # late but correct: too late
    with connect(a.url, proxy=None) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_reason == "authentication timeout"
    # in time: served
    assert a.client().call("Trainers")["symbols"] == []


# --- bad input never kills the server -------------------------------------------------------------


def test_each_kind_of_bad_frame_gets_an_error_naming_it(admin: MakeAdmin) -> None:
    a = admin(["BTC/USDT"])
    c = a.client()
    cases: list[tuple[str | bytes, Any, str]] = [
        ("{nope", None, "not valid JSON: JSON is malformed"),
        (b'{"type":"Status","id":1}', None, "binary frames are not accepted; send JSON text"),
        ("[1, 2]", None, 'a request must be a JSON object with a "type" field'),
        ('{"id": 3}', 3, 'no "type" field (known: Auth, Block, Close, CloseAll, Pause,'),
        ('{"type": "Launch", "id": 4}', 4, "unknown request type 'Launch' (known: Auth,"),
        ('{"type": ["Status"], "id": 4}', 4, "unknown request type ['Status'] (known: Auth,"),
        (
            '{"type": "Block", "id": 5}',
            5,
            "bad Block request: Object missing required field symbol",
        ),
        ('{"type": "Block", "id": 6, "symbol": 7}', 6, "bad Block request: Expected str, got int"),
        ('{"type": "Pause", "id": 8, "force": true}', 8, "Object contains unknown field force"),
        ('{"type": "Status", "id": -1}', None, "bad Status request: Expected int >= 0 - at $.id"),
        ('{"type": "Status"}', None, "bad Status request: Object missing required field id"),
        ('{"type": "Auth", "id": 9, "token": "x"}', 9, "already authenticated"),
        ('{"type": "Unwatch", "id": 10}', 10, "not watching"),
        ('{"type":"Status","id":11,"pad":"' + "x" * MAX_FRAME_BYTES + '"}', None, "frame of "),
    ]
    for frame, request_id, error in cases:
        c.send(frame)
        reply = c.reply()
        assert reply["type"] == "Error" and reply["id"] == request_id, (frame[:80], reply)
        assert error in reply["error"], (frame[:80], reply)
    assert c.call("Status")["type"] == "StatusReply"


def test_a_frame_over_the_transport_limit_closes_that_connection_only(admin: MakeAdmin) -> None:
    a = admin(["BTC/USDT"])
    big, fine = a.client(), a.client()
    big.send("x" * (2 * 1024 * 1024))
    with pytest.raises(ConnectionClosed):
        big.recv(timeout=10)
    assert big.ws.close_code == 1009  # message too big: the websocket layer's own limit
    assert fine.call("Symbols")["type"] == "SymbolsReply"
    assert a.client().call("Trainers")["type"] == "TrainersReply"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
# every request type except those that start real work (Retrain: a fit) or end the run
_types = st.sampled_from(
    ["Auth", "Status", "Symbols", "Block", "Unblock", "Pause", "Resume", "Close", "CloseAll",
     "Trainers", "Watch", "Unwatch", "ReloadModels", "Launch", "", "status"]
)  # fmt: skip
_request_like = st.fixed_dictionaries(
    {"type": _types | _json},
    optional={
        "id": st.integers(-3, 2**64) | st.text(max_size=3) | st.none() | st.booleans(),
        "symbol": st.text(max_size=80) | st.integers() | st.sampled_from(["NOPE/USDT", "x" * 65]),
        "reason": st.text(max_size=600),
        "token": st.text(max_size=8),
        "signals": st.booleans() | st.integers(),
        "extra": _json,
    },
)
_frames = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    _request_like.map(json.dumps),
    _json.map(json.dumps),
    st.integers(1, 200).map(
        lambda n: '{"type": "Status", "id": 1, "pad": "' + "y" * n * 1000 + '"'
    ),
    _request_like.map(lambda r: json.dumps(r)[:-1]),  # truncated
)


def test_fuzzed_frames_get_error_replies_and_the_server_keeps_serving(admin: MakeAdmin) -> None:
    a = admin(["BTC/USDT", "PEPE/USDT"])
    c = a.client()
    seen: dict[str, int] = {}

    @hsettings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(frames=st.lists(_frames, min_size=1, max_size=4))
    def exchange(frames: list[str | bytes]) -> None:
        for frame in frames:
            c.send(frame)
            reply = c.reply()  # exactly one reply per frame, whatever it was
            seen[reply["type"]] = seen.get(reply["type"], 0) + 1
            assert reply["type"] in (
                "Reply",
                "Error",
                "StatusReply",
                "SymbolsReply",
                "TrainersReply",
            )
            if reply["type"] == "Error":
                assert isinstance(reply["error"], str) and reply["error"]

    exchange()
    assert seen.get("Error", 0) > 20
    c.call("Unwatch")  # whether or not a fuzzed Watch was on
    c.call("Resume")
    status = c.call("Status")
    assert status["type"] == "StatusReply" and status["paused"] is False
    # a new connection still authenticates, and the actors are unharmed
    fresh = a.client()
    assert {s["symbol"]: s["state"] for s in fresh.call("Symbols")["symbols"]} == {
        "BTC/USDT": "ACTIVE",
        "PEPE/USDT": "BLOCKED_HISTORY",
    }


def test_fuzzed_first_frames_never_authenticate(admin: MakeAdmin) -> None:
    a = admin(["BTC/USDT"])

    @hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(frame=_frames)
    def first(frame: str | bytes) -> None:
        reply, code = _refused(a, frame)
        assert reply is not None and reply["error"] == "authentication failed"
        assert code == 1008

    first()
    assert a.client().call("Trainers")["type"] == "TrainersReply"


# --- several clients at once ---------------------------------------------------------------------


def test_several_clients_at_once_each_get_their_own_replies(admin: MakeAdmin) -> None:
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]
    a = admin(symbols)
    watchers = [a.client(), a.client()]
    for w in watchers:
        w.call("Watch")
    errors: list[BaseException] = []

    def work(symbol: str) -> None:
        try:
            c = a.client()
            for i in range(5):
                blocked = c.call("Block", symbol=symbol, reason=f"round {i}")
                assert blocked["ok"] and symbol in blocked["detail"], blocked
                status = c.call("Status")
                assert symbol in {s["symbol"] for s in status["symbols"]}
                unblocked = c.call("Unblock", symbol=symbol)
                assert unblocked["ok"] and unblocked["detail"].startswith(symbol), unblocked
            c.close()
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in symbols]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    a.bot.settle()
    assert set(states(a.bot).values()) == {SymbolState.ACTIVE}
    for w in watchers:
        w.call("Status")
        blocks = [e["event"] for e in w.events if e["event"].get("new") == "BLOCKED_MANUAL"]
        assert len(blocks) == 5 * len(symbols)  # each watcher saw every transition


# --- the supervisor's part -----------------------------------------------------------------------


def test_an_admin_port_in_use_stops_the_bot_with_a_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import signal
    import socket

    from app.builders import build_admin_server
    from app.supervision import Supervisor

    bot = Bot(tmp_path, ["BTC/USDT"])
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        admin = build_admin_server(bot.system, TOKEN, port=port)
        try:
            assert Supervisor(bot.system, admin=admin).run() == 1
        finally:
            signal.signal(signal.SIGINT, handlers[0])
            signal.signal(signal.SIGTERM, handlers[1])
    assert (
        f"admin server cannot listen on ws://127.0.0.1:{port}: address already in use; "
        "stopping the bot (change admin.port or admin.enabled)" in caplog.text
    )
    assert not bot.system.addresses["trader"].is_alive()  # everything stopped in order


@given(frame=_frames)
def test_decoding_any_frame_gives_a_request_or_an_error_never_an_exception(
    frame: str | bytes,
) -> None:
    result = decode_request(frame)
    assert isinstance(result, AdminRequest | ErrorReply)
    if isinstance(result, ErrorReply):
        assert result.error
