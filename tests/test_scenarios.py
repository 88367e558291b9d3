"""The old bot's failures, as regression tests on the whole actor system (virtual time).

The old bot re-ran "re-evaluate blocked symbols" on every 60-second trader
iteration: it reloaded its model every minute, re-queued symbols already
training, and never reached normal trading. Each test here fails if that
behaviour comes back.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from actors.messages import (
    BlockSymbol,
    CommandResult,
    CoverageChecked,
    CoverageTick,
    GetSymbols,
    ModelsReloaded,
    OrderPlaced,
    RetrainSymbol,
    SignalProduced,
    SymbolStates,
    SymbolTransition,
    TrainerFinished,
    TrainerStarted,
)
from policy.lifecycle import DAY_S, SymbolState
from tests.harness import EVERY_CANDLE, T0, Bot


def start(bots: list[Bot], tmp_path: Path, symbols: list[str], **sections: object) -> Bot:
    bot = Bot(tmp_path, symbols, **sections)
    bots.append(bot)
    return bot.start()


def states(bot: Bot) -> dict[str, SymbolState]:
    reply: SymbolStates = bot.ask("coverage", GetSymbols())
    return {r.symbol: r.state for r in reply.records}


def test_trader_loop_every_60s_does_not_drive_coverage_reloads_or_requeues(
    bots: list[Bot], tmp_path: Path
) -> None:
    bot = start(bots, tmp_path, ["BTC/USDT", "PEPE/USDT", "WIF/USDT"])
    assert states(bot) == {
        "BTC/USDT": SymbolState.ACTIVE,
        "PEPE/USDT": SymbolState.BLOCKED_HISTORY,
        "WIF/USDT": SymbolState.BLOCKED_HISTORY,
    }
    trainers_at_start = len(bot.events.of(TrainerStarted))
    coverage = bot.system.addresses["coverage"]
    for _ in range(30):  # the trader loops every 60 s for 30 virtual minutes ...
        bot.clock.advance(60)
        # ... and, as in the old bot, asks for a coverage pass on every loop
        coverage.tell(CoverageTick(at=bot.clock.now()))
        bot.settle()
    checks = bot.events.of(CoverageChecked)
    assert [c.trigger for c in checks] == ["startup"] + ["tick"] * 6
    assert [c.at - T0 for c in checks] == [0, 300, 600, 900, 1200, 1500, 1800]
    reloads = bot.events.of(ModelsReloaded)
    assert [r.trigger for r in reloads] == ["startup", "published"]  # BTC's one new version
    assert len(bot.events.of(TrainerStarted)) == trainers_at_start == 1  # no re-queue


def test_a_symbol_never_gets_a_second_trainer(bots: list[Bot], tmp_path: Path) -> None:
    bot = Bot(tmp_path, ["ETH/USDT"])
    bots.append(bot)
    # the slow part of a training (the history download) stalls until the test releases it
    gate, downloading = threading.Event(), threading.Event()
    fetch = bot.exchange.fetch_ohlcv

    def stalled_fetch(*args: object, **kwargs: object) -> object:
        downloading.set()
        gate.wait(timeout=30)
        return fetch(*args, **kwargs)  # type: ignore[arg-type]

    bot.exchange.fetch_ohlcv = stalled_fetch  # type: ignore[method-assign]
    bot.start(wait=False)
    assert downloading.wait(timeout=30)  # the startup evaluation started the one trainer
    replies: list[CommandResult] = []
    directory_starts: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        for i in range(125):
            if i % 2:
                reply = bot.ask("coverage", RetrainSymbol(symbol="ETH/USDT"))
                with lock:
                    replies.append(reply)
            else:  # and straight at the trainer directory, bypassing the coverage mailbox
                started = bot.system.trainers.start("ETH/USDT")
                with lock:
                    directory_starts.append(started)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gate.set()
    bot.settle()
    assert len(replies) + len(directory_starts) == 1000
    assert not any(directory_starts)
    assert {r.detail for r in replies} <= {"ETH/USDT is already training"}
    assert [e.symbol for e in bot.events.of(TrainerStarted)] == ["ETH/USDT"]
    published = [r for r in bot.events.of(ModelsReloaded) if r.trigger == "published"]
    assert len(published) == 1  # one fit, one model version
    assert [e.ok for e in bot.events.of(TrainerFinished)] == [True]
    assert states(bot) == {"ETH/USDT": SymbolState.ACTIVE}


def test_young_symbol_waits_for_history_then_trains_once(
    bots: list[Bot], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bot = start(bots, tmp_path, ["PEPE/USDT"])  # 12.5 days old at T0: eligible at T0 + 1.5 days
    eligible_at = T0 + 1.5 * DAY_S
    assert states(bot) == {"PEPE/USDT": SymbolState.BLOCKED_HISTORY}
    assert (
        "PEPE/USDT: NEW -> BLOCKED_HISTORY (12.5 days of history < 14 minimum; "
        "eligible 2026-11-27 12:00 UTC)\n" in caplog.text
    )
    bot.run(eligible_at - 60 - bot.clock.now(), step=3600)
    assert states(bot) == {"PEPE/USDT": SymbolState.BLOCKED_HISTORY}
    assert bot.events.of(TrainerStarted) == []
    bot.run(900, step=300)
    assert [e.symbol for e in bot.events.of(TrainerStarted)] == ["PEPE/USDT"]
    assert states(bot) == {"PEPE/USDT": SymbolState.ACTIVE}
    assert (
        "PEPE/USDT: BLOCKED_HISTORY -> TRAINING (history now 14.0 days >= 14 minimum)"
        in caplog.text
    )
    published = next(r for r in bot.events.of(ModelsReloaded) if r.trigger == "published")
    active = next(t for t in bot.events.of(SymbolTransition) if t.new == "ACTIVE")
    assert 0 <= active.at - published.at <= bot.settings.coverage.interval_s
    bot.run(3600, step=300)
    assert len(bot.events.of(TrainerStarted)) == 1  # trained once


def test_symbol_added_by_universe_refresh_is_trained_once(bots: list[Bot], tmp_path: Path) -> None:
    bot = start(bots, tmp_path, ["JUP/USDT", "WIF/USDT"])  # JUP opens 30 min after start
    assert "JUP/USDT" not in states(bot)
    bot.run(3600 - 60, step=300)
    assert "JUP/USDT" not in states(bot)
    bot.run(600, step=60)
    assert states(bot)["JUP/USDT"] is SymbolState.ACTIVE
    bot.run(1800, step=300)
    assert [e.symbol for e in bot.events.of(TrainerStarted)] == ["JUP/USDT"]


def test_failing_training_backs_off_exponentially_then_blocks(
    bots: list[Bot], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bot = start(bots, tmp_path, ["USDC/USDT"])  # flat price: every training fails
    bot.run(4 * 3600, step=300)
    # it can never train (one label class): one warning says so, not one per attempt
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("USDC/USDT: labels have a single class")
    assert warnings[0].endswith(
        "it is retried up to 3 times as new data comes in, without another warning"
    )
    starts = [e.at - T0 for e in bot.events.of(TrainerStarted)]
    assert starts == [0, 600, 600 + 1200, 600 + 1200 + 2400]  # 10, 20, 40 min apart
    assert states(bot) == {"USDC/USDT": SymbolState.BLOCKED_FAILED}
    fails = bot.events.of(TrainerFinished)
    assert [f.ok for f in fails] == [False] * 4 and "single class" in fails[0].detail


def test_only_active_symbols_produce_signals_and_orders(bots: list[Bot], tmp_path: Path) -> None:
    # thresholds that trade on every candle: enter on one, exit on the next
    bot = start(
        bots,
        tmp_path,
        ["BTC/USDT", "ETH/USDT", "SOL/USDT", "PEPE/USDT"],
        trading=EVERY_CANDLE,
    )
    bot.run(600, step=60)
    bot.ask("coverage", BlockSymbol(symbol="ETH/USDT", reason="listing news"))
    bot.run(1800, step=60)
    state: dict[str, str] = {}
    traded: dict[str, int] = {}
    for event in bot.events.items:  # in the order they happened
        if isinstance(event, SymbolTransition):
            state[event.symbol] = event.new
        elif isinstance(event, SignalProduced | OrderPlaced):
            assert state.get(event.symbol) == "ACTIVE", f"{event} while {state.get(event.symbol)}"
            traded[event.symbol] = traded.get(event.symbol, 0) + 1
    assert state["ETH/USDT"] == "BLOCKED_MANUAL" and state["PEPE/USDT"] == "BLOCKED_HISTORY"
    assert "PEPE/USDT" not in traded
    assert traded["BTC/USDT"] > 30 and traded["SOL/USDT"] > 30  # it did trade, every candle
    assert (
        sum(isinstance(e, OrderPlaced) and e.symbol == "BTC/USDT" for e in bot.events.items) >= 30
    )
