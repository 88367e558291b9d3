"""Faults inside a running bot, on virtual time: crashed actors, lost answers, killed workers,
restarts, broken model folders. Each test fails without the recovery it checks.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from actors.messages import (
    ActorDied,
    BlockSymbol,
    GetSymbols,
    GetTraderStatus,
    OrderFailed,
    OrderPlaced,
    Pause,
    Ping,
    Reconciled,
    RetrainSymbol,
    SignalProduced,
    SymbolStates,
    TrainerFinished,
    TrainerStarted,
)
from app.supervision import Supervisor
from exchange.port import ExchangeRoles
from exchange.types import TransientExchangeError
from models import artifacts
from policy.lifecycle import DAY_S, SymbolRecord, SymbolState
from storage.db import ModelVersions, SymbolStore
from storage.ledger import OrderState
from tests.harness import EVERY_CANDLE, T0, Bot, settle, stage_model, until
from tests.test_supervisor import Boom
from tests.test_supervisor import _Explode as Explode
from tests.test_supervisor import _make_explosive as explosive


def restart_after_death(bot: Bot, supervisor: Supervisor, name: str) -> ActorDied:
    died = bot.system.mailbox.queue.get(timeout=10)
    assert isinstance(died, ActorDied) and died.name == name, died
    assert supervisor.handle(died)
    bot.settle()
    return died


def publish_models(bot: Bot, *symbols: str) -> None:
    """Models already on disk when the bot starts (no training needed)."""
    models_dir = Path(bot.settings.data_dir) / "models"
    for i, symbol in enumerate(symbols):
        artifacts.publish(models_dir, stage_model(models_dir, symbol, seed=i + 1))


def records(bot: Bot) -> dict[str, SymbolRecord]:
    reply: SymbolStates = bot.ask("coverage", GetSymbols())
    return {r.symbol: r for r in reply.records}


def ledger_and_exchange_agree(bot: Bot) -> None:
    rows = {r.client_order_id: r for r in bot.system.ledger.orders()}
    on_exchange = {o for o in rows if bot.exchange.fetch_order(rows[o].symbol, o) is not None}
    sent = {c for c, r in rows.items() if r.state is not OrderState.REJECTED}
    assert on_exchange == sent
    assert not bot.system.ledger.orders(OrderState.NEW, OrderState.SENT)
    balances = bot.exchange.fetch_balances()
    held = {s: p.amount for s, p in bot.system.ledger.positions().items()}
    assert held == {f"{a}/USDT": b.total for a, b in balances.items() if a != "USDT"}


# --- the trader ----------------------------------------------------------------------------


def test_trader_crash_after_create_order_is_reconciled_not_resent(
    bots: list[Bot], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actors.trader import TraderActor

    bot = Bot(tmp_path, ["BTC/USDT"], trading=EVERY_CANDLE)
    bots.append(bot)
    publish_models(bot, "BTC/USDT")
    original = TraderActor._record_fill
    crashes = []

    def record_then_crash(self: Any, *args: Any) -> None:
        if not crashes:  # the exchange filled the order; the trader dies before recording it
            crashes.append(args[0].client_order_id)
            raise Boom("bug between create_order and recording its answer")
        original(self, *args)

    monkeypatch.setattr(TraderActor, "_record_fill", record_then_crash)
    supervisor = Supervisor(bot.system)
    bot.start()  # BTC is ACTIVE at once and the trader buys on the last closed candle
    died = restart_after_death(bot, supervisor, "trader")
    assert "between create_order and recording" in died.error
    coid = crashes[0]
    row = bot.system.ledger.get(coid)
    assert row is not None and row.state is OrderState.FILLED  # looked up, not re-sent
    reconciled = bot.events.of(Reconciled)
    assert [r.summary for r in reconciled] == [
        "Reconciled with paper: 0 orders resolved, 0 positions, 0 mismatches",
        "Reconciled with paper: 1 order resolved (1 filled), 1 position, 0 mismatches",
    ]
    assert bot.events.of(OrderPlaced) == []  # the restarted trader did not buy again
    status = bot.ask("trader", GetTraderStatus())
    assert [p.amount for p in status.positions] == [row.filled]
    ledger_and_exchange_agree(bot)
    bot.run(65)  # the next candle (closed at +60 s, traded at +62 s): the position is sold
    assert [(o.intent, o.side) for o in bot.events.of(OrderPlaced)] == [("exit", "sell")]
    ledger_and_exchange_agree(bot)


def test_an_answer_lost_on_the_wire_is_looked_up_before_the_next_order(
    bots: list[Bot], tmp_path: Path
) -> None:
    bot = Bot(tmp_path, ["BTC/USDT", "ETH/USDT"], trading=EVERY_CANDLE)
    bots.append(bot)
    publish_models(bot, "BTC/USDT", "ETH/USDT")
    create_order = bot.exchange.create_order
    lost: list[str] = []

    def answer_lost(request: Any) -> Any:
        order = create_order(request)  # the exchange places it ...
        if not lost:
            lost.append(request.client_order_id)  # ... and the answer times out
            raise TransientExchangeError(f"{request.symbol}: read timed out")
        return order

    bot.exchange.create_order = answer_lost  # type: ignore[method-assign]
    bot.start()
    failed = bot.events.of(OrderFailed)
    assert [f.client_order_id for f in failed] == lost and "timed out" in failed[0].error
    assert bot.system.ledger.get(lost[0]).state is OrderState.SENT  # type: ignore[union-attr]
    assert bot.events.of(OrderPlaced) == []  # nothing else was sent while it was unknown
    bot.run(65)  # the next candle
    assert bot.events.of(Reconciled)[-1].resolved == {"filled": 1}
    assert bot.system.ledger.get(lost[0]).state is OrderState.FILLED  # type: ignore[union-attr]
    placed = bot.events.of(OrderPlaced)
    assert lost[0] not in {o.client_order_id for o in placed}  # never sent twice
    # then trading goes on: ETH enters on the new candle; BTC's position dates from its
    # lookup, so it is held its one candle (max_hold_bars) and both sell on the next
    assert [(o.symbol, o.intent) for o in placed] == [("ETH/USDT", "entry")]
    bot.run(60)
    later = {(o.symbol, o.intent) for o in bot.events.of(OrderPlaced)[1:]}
    assert later == {("BTC/USDT", "exit"), ("ETH/USDT", "exit")}
    ledger_and_exchange_agree(bot)


def test_a_restarted_trader_keeps_its_positions_and_its_pause(
    bots: list[Bot], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actors.trader import TraderActor

    explosive(monkeypatch, TraderActor)
    bot = Bot(tmp_path, ["BTC/USDT"], trading={**EVERY_CANDLE, "max_hold_bars": 0})
    bots.append(bot)
    publish_models(bot, "BTC/USDT")
    supervisor = Supervisor(bot.system)
    bot.start()
    assert bot.ask("trader", Pause()).ok
    before = bot.ask("trader", GetTraderStatus())
    assert len(before.positions) == 1 and before.paused
    bot.system.addresses["trader"].tell(Explode())
    restart_after_death(bot, supervisor, "trader")
    after = bot.ask("trader", GetTraderStatus())
    assert after.positions == before.positions and after.paused
    assert after.realized_pnl == before.realized_pnl


def test_a_symbol_trades_at_once_whichever_of_its_state_and_model_arrives_last(
    tmp_path: Path,
) -> None:
    """A restarted trader learns states and models from two actors, in either order."""
    from actors.messages import ModelsUpdated
    from app.builders import build_paper_exchange
    from exchange.synthetic import SyntheticMarket
    from storage.ledger import MemoryLedger
    from tests.harness import new_clock, published_model
    from tests.test_actors_isolated import TraderRig, _states

    clock = new_clock()
    exchange = build_paper_exchange(SyntheticMarket(anchor_ms=int(T0 * 1000)), clock)
    rig = TraderRig(exchange, clock, MemoryLedger(), **EVERY_CANDLE)
    rig.ref.tell(_states(BTC_USDT=SymbolState.ACTIVE))  # the state first ...
    settle(rig.runtime)
    assert rig.events.of(OrderPlaced) == []
    model = published_model(tmp_path, "BTC/USDT")
    rig.ref.tell(ModelsUpdated(version=model.version, symbols=(), models={"BTC/USDT": model}))
    settle(rig.runtime)  # ... then its model: it trades on the last closed candle, not later
    assert [o.symbol for o in rig.events.of(OrderPlaced)] == ["BTC/USDT"]


class SlowUniverse:
    """The downloads role behind a slow exchange: load_markets waits until released."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.asked = threading.Event()
        self.release = threading.Event()

    def load_markets(self) -> Any:
        self.asked.set()
        assert self.release.wait(30), "never released"
        return self.inner.load_markets()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def held_then_restarted(tmp_path: Path, **options: Any) -> Bot:
    """A bot that bought BTC on its first candle and stopped; restarted 90 s later with a
    model that says exit on every candle (`options` for the new Bot)."""
    first = Bot(
        tmp_path, ["BTC/USDT"], paper_state=True, trading={**EVERY_CANDLE, "exit_threshold": 0.0}
    )
    publish_models(first, "BTC/USDT")
    first.start()  # buys on the last closed candle
    assert [o.intent for o in first.events.of(OrderPlaced)] == ["entry"]
    first.stop()
    return Bot(
        tmp_path, ["BTC/USDT"], at=T0 + 90, paper_state=True, trading=EVERY_CANDLE, **options
    )


def exit_candle_ms(bot: Bot) -> int:
    """The candle of the first order after the restart, which must be the exit."""
    exit_order = bot.events.of(OrderPlaced)[0]
    assert exit_order.intent == "exit"
    row = bot.system.ledger.get(exit_order.client_order_id)
    assert row is not None
    return row.candle_ms


def test_a_restarted_bot_exits_on_the_first_candle_while_the_exchange_is_slow_for_coverage(
    bots: list[Bot], tmp_path: Path
) -> None:
    """Coverage's first pass waited on a slow exchange inside its handler, and the trader
    waited for coverage: entries and exits went out 12-26 s after the candle. The lookups
    now run outside coverage's mailbox: it answers the trader with the states it restored."""
    slow: list[SlowUniverse] = []

    def roles(paper: Any) -> ExchangeRoles:
        slow.append(SlowUniverse(paper))
        return ExchangeRoles(orders=paper, market_data=paper, downloads=slow[0])

    again = held_then_restarted(tmp_path, roles=roles)
    bots.append(again)
    try:
        again.start(wait=False)
        assert slow[0].asked.wait(30)  # coverage's universe lookup hangs ...
        # barriers along the path: the trader subscribed, store and coverage answered it,
        # it asked for candles, market data answered, it decided
        for name in ("trader", "model_store", "coverage", "trader", "market_data", "trader"):
            again.system.addresses[name].ask(Ping())
        # ... and the trader has its states and has decided the candle closed before the
        # restart (at T0+60), without waiting for the lookup
        assert exit_candle_ms(again) == T0 * 1000
    finally:
        slow[0].release.set()
    again.settle()


def test_no_candle_is_decided_before_coverages_first_snapshot_and_that_candle_is_not_lost(
    bots: list[Bot],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Until coverage's first symbol states arrive, a candle must not be decided on a held
    position without its model (only the stop loss) and then count as decided: its exit
    signal would be lost until the next candle (seen twice: BNB P(up) 0.272, ETH 0.356)."""
    from actors.coverage import CoverageActor

    caplog.set_level(logging.INFO)
    release, restoring = threading.Event(), threading.Event()
    restore = CoverageActor._restore

    def slow_restore(self: Any) -> None:  # coverage is slow to start (its database, say)
        restoring.set()
        assert release.wait(30), "never released"
        restore(self)

    again = held_then_restarted(tmp_path)
    bots.append(again)
    monkeypatch.setattr(CoverageActor, "_restore", slow_restore)
    try:
        again.start(wait=False)
        assert restoring.wait(30)
        again.system.addresses["trader"].ask(Ping())  # started, models received
        again.clock.advance(40)  # the candle closed at T0+120 is due at T0+122
        assert again.events.of(OrderPlaced) == []  # not decided without the states
        assert (
            "Candle not decided yet for 1 open position: waiting for the first symbol states"
            in caplog.text
        )
    finally:
        release.set()
    again.settle()
    assert exit_candle_ms(again) == (T0 + 60) * 1000  # that very candle


def test_a_restarted_trader_waits_out_a_sent_orders_recv_window_before_calling_it_never_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from app.builders import build_paper_exchange
    from exchange.synthetic import SyntheticMarket
    from policy.risk import Intent
    from storage.ledger import MemoryLedger, OrderRow
    from tests.harness import new_clock
    from tests.test_actors_isolated import TraderRig

    caplog.set_level(logging.INFO)
    clock = new_clock()
    paper = build_paper_exchange(SyntheticMarket(anchor_ms=int(T0 * 1000)), clock)

    class LikeBinance:
        """A request is accepted up to 6 s after it left."""

        settle_window_s = 6.0

        def __getattr__(self, name: str) -> Any:
            return getattr(paper, name)

    ledger = MemoryLedger()
    coid = "ta-sent-just-before-the-crash"
    ledger.add_intent(
        OrderRow(
            client_order_id=coid,
            symbol="BTC/USDT",
            side="buy",
            intent=Intent.ENTRY,
            amount=0.002,
            candle_ms=int(T0 * 1000) - 60_000,
            created_at=T0 - 1,
            updated_at=T0 - 1,
        )
    )
    ledger.update(coid, state=OrderState.SENT, updated_at=T0 - 1)
    rig = TraderRig(LikeBinance(), clock, ledger)  # type: ignore[arg-type]
    settle(rig.runtime)
    assert rig.events.of(Reconciled) == []  # not decided: it may still arrive
    assert ledger.get(coid).state is OrderState.SENT  # type: ignore[union-attr]
    assert "looked up again at 2026-11-26 00:00:05 UTC" in caplog.text
    clock.advance(10)  # its recvWindow passes on the trader's clock: nothing slept
    settle(rig.runtime)
    [reconciled] = rig.events.of(Reconciled)
    assert reconciled.resolved == {"never sent": 1}
    assert ledger.get(coid).state is OrderState.REJECTED  # type: ignore[union-attr]


# --- coverage and restarts -----------------------------------------------------------------


def test_a_restarted_coverage_actor_reloads_symbol_states(
    bots: list[Bot], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actors.coverage import CoverageActor

    explosive(monkeypatch, CoverageActor)
    bot = Bot(tmp_path, ["BTC/USDT", "ETH/USDT"])
    bots.append(bot)
    publish_models(bot, "BTC/USDT", "ETH/USDT")
    supervisor = Supervisor(bot.system)
    bot.start()
    assert bot.ask("coverage", BlockSymbol(symbol="ETH/USDT", reason="listing news")).ok
    bot.system.addresses["coverage"].tell(Explode())
    restart_after_death(bot, supervisor, "coverage")
    eth = records(bot)["ETH/USDT"]
    assert eth.state is SymbolState.BLOCKED_MANUAL
    assert eth.reason == "blocked by admin: listing news"
    assert records(bot)["BTC/USDT"].state is SymbolState.ACTIVE
    bot.events.clear()
    bot.run(125)
    assert {e.symbol for e in bot.events.of(SignalProduced)} == {"BTC/USDT"}


def test_a_restarted_bot_keeps_blocked_symbols_blocked_with_their_reasons(
    bots: list[Bot], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = Bot(tmp_path, ["BTC/USDT", "ETH/USDT", "PEPE/USDT", "USDC/USDT"], paper_state=True)
    publish_models(first, "BTC/USDT", "ETH/USDT")
    first.start()
    first.ask("coverage", BlockSymbol(symbol="ETH/USDT", reason="listing news"))
    first.run(4 * 3600, step=300)  # USDC (flat price) fails 4 trainings: blocked
    before = records(first)
    first.stop()
    assert before["USDC/USDT"].state is SymbolState.BLOCKED_FAILED
    assert before["PEPE/USDT"].state is SymbolState.BLOCKED_HISTORY

    caplog.set_level(logging.INFO)
    second = Bot(  # the same data folder, a restart an hour later
        tmp_path,
        ["BTC/USDT", "ETH/USDT", "PEPE/USDT", "USDC/USDT"],
        paper_state=True,
        at=first.clock.now() + 3600,
    )
    bots.append(second)
    second.start()
    second.run(600, step=300)
    after = records(second)
    for symbol in ("ETH/USDT", "PEPE/USDT", "USDC/USDT"):
        assert after[symbol] == before[symbol], symbol  # state, reason, times, attempts
    usdc = after["USDC/USDT"]
    assert usdc.attempts == 4 and "single class" in (usdc.last_error or "")
    assert after["PEPE/USDT"].eligible_at == pytest.approx(T0 + 1.5 * DAY_S, abs=60)
    assert after["BTC/USDT"].state is SymbolState.ACTIVE
    assert second.events.of(TrainerStarted) == []  # nothing blocked is retried
    assert "Symbol states restored: 4 symbols (1 ACTIVE, 1 BLOCKED_FAILED" in caplog.text
    assert "ETH/USDT: still BLOCKED_MANUAL (blocked by admin: listing news)" in caplog.text
    attempts = SymbolStore(second.system.db).attempts("USDC/USDT")
    assert [a.outcome for a in attempts] == ["failed"] * 4


def test_a_model_folder_missing_its_manifest_is_refused_and_its_symbol_retrained(
    bots: list[Bot], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = Bot(tmp_path, ["BTC/USDT", "ETH/USDT"])
    publish_models(first, "BTC/USDT", "ETH/USDT")  # v000001 BTC, v000002 ETH
    first.start()
    assert {s: r.state for s, r in records(first).items()} == {
        "BTC/USDT": SymbolState.ACTIVE,
        "ETH/USDT": SymbolState.ACTIVE,
    }
    first.stop()
    models_dir = Path(first.settings.data_dir) / "models"
    (models_dir / "v000002" / "manifest.json").unlink()  # e.g. a disk that lost it

    caplog.set_level(logging.INFO)
    second = Bot(tmp_path, ["BTC/USDT", "ETH/USDT"], at=T0 + 600)
    bots.append(second)
    second.start()
    assert f"Model refused: {models_dir / 'v000002'}: manifest.json missing" in caplog.text
    assert "ETH/USDT: promoted model v000002 does not load any more; no model" in caplog.text
    assert "ETH/USDT: ACTIVE -> NEW (its model v000002 no longer loads)" in caplog.text
    assert [e.symbol for e in second.events.of(TrainerStarted)] == ["ETH/USDT"]
    states = records(second)
    assert states["ETH/USDT"].state is SymbolState.ACTIVE
    assert states["ETH/USDT"].model_version == "v000003"  # retrained and published anew
    assert states["BTC/USDT"].model_version == "v000001"  # untouched
    second.run(65)
    assert {e.symbol for e in second.events.of(SignalProduced)} == {"BTC/USDT", "ETH/USDT"}
    recorded = {(v.version, v.source) for v in ModelVersions(second.system.db).versions()}
    assert recorded == {
        ("v000001", "found on disk"),  # published before the bot ran
        ("v000002", "found on disk"),
        ("v000003", "published"),
    }


def test_a_failed_publish_keeps_the_models_in_use(
    bots: list[Bot], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot(tmp_path, ["BTC/USDT"])
    bots.append(bot)
    publish_models(bot, "BTC/USDT")
    bot.start()
    models_dir = Path(bot.settings.data_dir) / "models"
    (models_dir / "v000002").write_text("junk where the next version goes\n")  # publish fails
    assert bot.ask("coverage", RetrainSymbol(symbol="BTC/USDT")).ok
    bot.settle()
    finished = bot.events.of(TrainerFinished)
    assert [f.ok for f in finished] == [False] and "cannot publish" in finished[0].detail
    assert "models in use are unchanged" in caplog.text
    btc = records(bot)["BTC/USDT"]
    assert btc.state is SymbolState.ACTIVE and btc.model_version == "v000001"
    assert btc.attempts == 1 and btc.next_attempt_at is not None  # retried after a backoff
    assert [p.name for p in artifacts.list_versions(models_dir)] == ["v000001"]
    assert list((models_dir / ".staging").iterdir()) == []  # the failed job left nothing
    bot.events.clear()
    bot.run(65)
    signals = bot.events.of(SignalProduced)
    assert [s.symbol for s in signals] == ["BTC/USDT"]  # still trading on v000001
    attempts = SymbolStore(bot.system.db).attempts("BTC/USDT")
    assert attempts[-1].outcome == "failed" and "cannot publish" in (attempts[-1].error or "")


def test_a_publish_the_store_never_answers_fails_the_training_with_a_reason(
    bots: list[Bot], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost reply left the trainer waiting for ever and its symbol TRAINING."""
    from actors.model_store import ModelStoreActor
    from actors.trainer import PUBLISH_REPLY_S

    monkeypatch.setattr(ModelStoreActor, "_publish", lambda self, message: None)  # lost
    bot = Bot(tmp_path, ["BTC/USDT"])
    bots.append(bot)
    bot.start()  # BTC trains at once: the fit finishes, the publish is sent, nobody answers
    assert [t.symbol for t in bot.events.of(TrainerStarted)] == ["BTC/USDT"]
    assert bot.events.of(TrainerFinished) == []
    assert records(bot)["BTC/USDT"].state is SymbolState.TRAINING
    bot.run(PUBLISH_REPLY_S + 5)
    [finished] = bot.events.of(TrainerFinished)
    assert not finished.ok
    assert finished.detail == "the model store did not answer within 120 s"
    btc = records(bot)["BTC/USDT"]
    assert btc.state is SymbolState.RETRY_WAIT and btc.next_attempt_at is not None  # backs off
    assert bot.system.trainers.symbols() == []


def test_staging_folders_left_by_a_killed_process_are_removed_at_start(
    bots: list[Bot], tmp_path: Path
) -> None:
    bot = Bot(tmp_path, ["BTC/USDT"])
    bots.append(bot)
    publish_models(bot, "BTC/USDT")
    models_dir = Path(bot.settings.data_dir) / "models"
    leftover = stage_model(models_dir, "BTC/USDT")  # a fit finished, the bot died before publish
    (leftover / "manifest.json").unlink()
    bot.start()
    assert not leftover.exists()
    assert [p.name for p in artifacts.list_versions(models_dir)] == ["v000001"]


# --- a training worker killed in the middle of a fit ------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_a_worker_killed_mid_fit_fails_the_training_with_backoff(
    bots: list[Bot], tmp_path: Path
) -> None:
    from models.pool import TrainingPool

    pool = TrainingPool(workers=1, kind="process")
    bot = Bot(tmp_path, ["ETH/USDT"], pool=pool, training={"window_days": 4, "max_iter": 200})
    bots.append(bot)
    bot.start(wait=False)  # no model: the startup evaluation starts a trainer

    def fitting() -> bool:  # a worker process busy fitting (its CPU time grows)
        pids = pool.worker_pids() if pool.in_flight() else []
        return bool(pids) and _cpu_seconds(pids[0]) >= 0.3

    until(fitting, "the worker started fitting")
    pid = pool.worker_pids()[0]
    os.kill(pid, signal.SIGKILL)
    bot.settle()
    finished = bot.events.of(TrainerFinished)
    assert [f.ok for f in finished] == [False]
    assert "BrokenProcessPool" in finished[0].detail
    eth = records(bot)["ETH/USDT"]
    assert eth.state is SymbolState.RETRY_WAIT and eth.attempts == 1
    assert eth.next_attempt_at == pytest.approx(bot.clock.now() + 600, abs=1)
    attempts = SymbolStore(bot.system.db).attempts("ETH/USDT")
    assert [a.outcome for a in attempts] == ["failed"]
    bot.run(600, step=300)  # after the backoff: a fresh worker trains it
    assert len(bot.events.of(TrainerStarted)) == 2
    assert records(bot)["ETH/USDT"].state is SymbolState.ACTIVE
    assert pool.worker_pids() and pid not in pool.worker_pids()


def test_a_full_disk_during_a_database_write_stops_the_trader_not_the_ledger(
    bots: list[Bot], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write the database refuses is an error in the handler: the trader dies and the
    supervisor restarts it; nothing half-written reaches the ledger."""
    from storage.db import StorageError

    bot = Bot(tmp_path, ["BTC/USDT"], trading=EVERY_CANDLE)
    bots.append(bot)
    publish_models(bot, "BTC/USDT")
    ledger = bot.system.ledger
    original = ledger.set_position
    failures = []

    def disk_full(*args: Any) -> None:
        if not failures:
            failures.append(1)
            raise StorageError(f"{bot.system.db.path}: write failed: {os.strerror(errno.ENOSPC)}")
        original(*args)

    monkeypatch.setattr(ledger, "set_position", disk_full)
    supervisor = Supervisor(bot.system)
    bot.start()
    died = restart_after_death(bot, supervisor, "trader")
    assert "No space left on device" in died.error
    # the order update and its position were one transaction: both or neither
    assert bot.events.of(Reconciled)[-1].resolved == {"filled": 1}
    ledger_and_exchange_agree(bot)
