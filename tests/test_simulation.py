"""The whole bot on virtual time: determinism, the summary and report, the invariant monitor.

The monitor is tested twice: directly on event sequences (pure), and inside
whole simulations where a deliberately broken coverage actor must be caught.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

import supervisor
from actors.base import Runtime, Topic
from actors.coverage import CoverageActor
from actors.messages import (
    CoverageChecked,
    CoverageTick,
    CoverageTrigger,
    Event,
    ModelsReloaded,
    ModelsUpdated,
    OrderPlaced,
    SignalProduced,
    SymbolStates,
    SymbolTransition,
    TradeTick,
    TrainerFinished,
    TrainerStarted,
    UniverseRefreshed,
)
from actors.trader import TraderActor
from app import system as app_system
from app.builders import build_paper_exchange
from app.logs import ClockFormatter
from config.settings import Settings, TradingSettings
from exchange.synthetic import (
    DEFAULT_SYMBOLS,
    SyntheticMarket,
    extra_symbol_specs,
    synthetic_specs,
)
from policy.lifecycle import DAY_S, SymbolRecord, SymbolState
from policy.risk import Intent
from policy.universe import is_blacklisted
from simulation.monitor import InvariantMonitor
from simulation.progress import progress_line
from simulation.report import format_summary, write
from simulation.runner import SIM_START
from simulation.summary import Summary, max_drawdown, symbol_pnl, without_wall_fields
from storage.ledger import MemoryLedger, OrderRow, OrderState
from tests.harness import (
    EVERY_CANDLE,
    HOLD,
    PROMOTE_ANY,
    Recorder,
    new_clock,
    published_model,
    settle,
    start_trader,
)

ROOT = Path(__file__).resolve().parents[1]
T = SIM_START


def small_settings() -> Settings:
    """Default settings with a short training window and few iterations (fast fits), and a
    trader that enters and exits on every other candle, so that runs trade and can differ."""
    return msgspec.convert(
        {
            "training": {"window_days": 4, "max_iter": 30},
            "trading": EVERY_CANDLE,
            "promotion": PROMOTE_ANY,
        },
        type=Settings,
    )


def simulate(days: float, symbols: int, **kwargs: Any) -> Summary:
    return supervisor.simulate(small_settings(), days=days, symbols=symbols, **kwargs)


# --- the invariant monitor, on event sequences ---------------------------------------


def monitor_of(*events: Event, **kwargs: Any) -> InvariantMonitor:
    monitor = InvariantMonitor(coverage_interval_s=300, **kwargs)
    for event in events:
        monitor.observe(event)
    return monitor


def to(symbol: str, new: SymbolState, at: float = T, old: str = "NEW") -> SymbolTransition:
    return SymbolTransition(at=at, symbol=symbol, old=old, new=new, reason="test")


def check(at: float, trigger: str = "tick") -> CoverageChecked:
    return CoverageChecked(at=at, trigger=trigger, symbols=1, active=0, blocked=0)


def order(symbol: str, coid: str, intent: Intent = Intent.ENTRY) -> OrderPlaced:
    return OrderPlaced(
        at=T,
        symbol=symbol,
        client_order_id=coid,
        side="buy",
        intent=intent,
        amount=1.0,
        price=1.0,
        why="test",
    )


def test_a_clean_run_of_events_has_no_violations() -> None:
    monitor = monitor_of(
        ModelsReloaded(at=T, version=None, symbols=(), trigger="startup"),
        UniverseRefreshed(at=T, added=("BTC/USDT",), removed=(), size=1),
        check(T, "startup"),
        to("BTC/USDT", SymbolState.TRAINING),
        TrainerStarted(at=T, symbol="BTC/USDT"),
        ModelsReloaded(at=T, version="v1", symbols=("BTC/USDT",), trigger="published"),
        to("BTC/USDT", SymbolState.ACTIVE),
        TrainerFinished(at=T, symbol="BTC/USDT", ok=True, detail="v1"),
        SignalProduced(at=T + 62, symbol="BTC/USDT", candle_ms=0, prob_up=0.6),
        order("BTC/USDT", "a"),
        check(T + 300),
        UniverseRefreshed(at=T + 3600, added=(), removed=(), size=1),
        check(T + 3600, "universe"),
        ModelsReloaded(at=T + 4000, version="v1", symbols=(), trigger="admin"),
        # an ACTIVE symbol may retrain in the background, and may be trained again after
        TrainerStarted(at=T + 5000, symbol="BTC/USDT"),
        TrainerFinished(at=T + 5000, symbol="BTC/USDT", ok=False, detail="boom"),
        TrainerStarted(at=T + 5600, symbol="BTC/USDT"),
        listed_at={"BTC/USDT": T - 100 * DAY_S},
        min_history_days=14,
    )
    assert monitor.violations == []
    assert monitor.duplicate_trainings == 0


def test_a_second_trainer_for_a_symbol_is_a_duplicate() -> None:
    monitor = monitor_of(
        to("ETH/USDT", SymbolState.TRAINING),
        TrainerStarted(at=T, symbol="ETH/USDT"),
        TrainerStarted(at=T + 60, symbol="ETH/USDT"),
    )
    assert monitor.duplicate_trainings == 1
    assert len(monitor.violations) == 1 and "invariant 1" in monitor.violations[0]
    assert monitor.violations[0].startswith("2026-11-26 00:01:00 UTC: ETH/USDT: a second trainer")


def test_training_a_symbol_blocked_for_history_is_a_violation() -> None:
    monitor = monitor_of(
        to("PEPE/USDT", SymbolState.BLOCKED_HISTORY),
        TrainerStarted(at=T, symbol="PEPE/USDT"),
        listed_at={"PEPE/USDT": T - 12.5 * DAY_S},
        min_history_days=14,
    )
    assert len(monitor.violations) == 2
    assert "while BLOCKED_HISTORY" in monitor.violations[0]
    assert "12.50 days of history < 14 minimum (invariant 3)" in monitor.violations[1]


def test_coverage_checks_closer_than_the_interval_are_violations() -> None:
    monitor = monitor_of(
        UniverseRefreshed(at=T, added=(), removed=(), size=0),
        check(T, "startup"),
        check(T + 299.5),  # within the 1 s tolerance of the clock
        check(T + 360),  # 60.5 s after the previous one: the old bot's 60 s loop
        check(T + 400, "universe"),  # no refresh before it
        check(T + 500, "startup"),  # a second startup without a restart
    )
    assert [v.split(": ", 1)[1] for v in monitor.violations] == [
        "coverage check 60 s after the previous one < 300 s interval (invariant 2)",
        "a 'universe' coverage check with no universe refresh before it",
        "a second 'startup' coverage check without a restart (invariant 2)",
    ]


def test_model_reloads_only_on_publish_or_admin() -> None:
    monitor = monitor_of(
        ModelsReloaded(at=T, version=None, symbols=(), trigger="startup"),
        ModelsReloaded(at=T + 60, version="v1", symbols=(), trigger="timer"),
        ModelsReloaded(at=T + 120, version="v1", symbols=("BTC/USDT",), trigger="published"),
    )
    assert len(monitor.violations) == 2
    assert "trigger 'timer'" in monitor.violations[0]
    assert "BTC/USDT: model reloaded as 'published' with no trainer" in monitor.violations[1]


def test_only_active_symbols_signal_or_enter_and_order_ids_never_repeat() -> None:
    monitor = monitor_of(
        to("SOL/USDT", SymbolState.ACTIVE),
        order("SOL/USDT", "a"),
        to("SOL/USDT", SymbolState.BLOCKED_MANUAL),
        SignalProduced(at=T, symbol="SOL/USDT", candle_ms=0, prob_up=0.5),
        order("SOL/USDT", "b"),
        order("SOL/USDT", "c", Intent.STOP_LOSS),  # exits of a blocked symbol are fine
        order("SOL/USDT", "c", Intent.STOP_LOSS),
    )
    assert len(monitor.violations) == 3
    assert "signal produced while BLOCKED_MANUAL" in monitor.violations[0]
    assert "entry order while BLOCKED_MANUAL" in monitor.violations[1]
    assert "client order id c used twice" in monitor.violations[2]


# --- what an exact replay needs of the actors ---------------------------------------------


@pytest.mark.parametrize("model_first", [True, False])
def test_a_symbol_becoming_active_trades_at_once_whichever_message_comes_first(
    model_first: bool, tmp_path: Path
) -> None:
    """The store's ModelsUpdated and coverage's SymbolStates race; the outcome must not."""
    clock = new_clock(T)
    exchange = build_paper_exchange(SyntheticMarket(anchor_ms=int(T * 1000)), clock)
    events, runtime = Recorder(), Runtime()
    trader = start_trader(
        clock=clock,
        exchange=exchange,
        ledger=MemoryLedger(),
        trading=TradingSettings(),
        store=Recorder(),
        coverage=Recorder(),
        events=Topic({"probe": events}),
        runtime=runtime,
    )
    model = published_model(tmp_path, "BTC/USDT")
    messages: list[Any] = [
        ModelsUpdated(version=model.version, symbols=("BTC/USDT",), models={"BTC/USDT": model}),
        SymbolStates(records=(SymbolRecord(symbol="BTC/USDT", state=SymbolState.ACTIVE),)),
    ]
    for message in messages if model_first else reversed(messages):
        trader.tell(message)
    settle(runtime)
    assert [(e.symbol, e.at) for e in events.of(SignalProduced)] == [("BTC/USDT", T)]


# --- pure helpers ------------------------------------------------------------------------


def test_max_drawdown_is_the_largest_fall_from_a_running_peak() -> None:
    assert max_drawdown([100, 120, 90, 110, 130, 125]) == (pytest.approx(0.25), 30)
    assert max_drawdown([100, 101, 102]) == (0.0, 0.0)
    assert max_drawdown([]) == (0.0, 0.0)


def test_symbol_pnl_counts_fees_and_values_what_is_held_at_the_last_price() -> None:
    def row(coid: str, side: str, amount: float, price: float, fee: float) -> OrderRow:
        return OrderRow(
            client_order_id=coid,
            symbol="BTC/USDT",
            side=side,
            intent="entry",
            amount=amount,
            candle_ms=0,
            state=OrderState.FILLED,
            filled=amount,
            average_price=price,
            fee_quote=fee,
        )

    rows = [row("a", "buy", 2, 100, 0.2), row("b", "sell", 1, 110, 0.11)]
    # -200 - 0.2 + 110 - 0.11, plus 1 held at 105
    assert symbol_pnl(rows, {"BTC/USDT": 105}) == {"BTC/USDT": pytest.approx(14.69)}


def test_progress_line_shows_simulated_time_and_speed() -> None:
    line = progress_line(2.5 * DAY_S, 7 * DAY_S, 54.0, width=10)
    assert line == "[####------] day 2.5 of 7 (60.0 h)  4,000x real time  54 s"


def test_log_lines_carry_virtual_time() -> None:
    clock = new_clock(SIM_START + 3 * DAY_S + 61)
    record = logging.LogRecord("tradeactors.x", logging.INFO, __file__, 1, "hello", None, None)
    text = ClockFormatter(clock).format(record)
    assert text.startswith("2026-11-29 00:01:01 INFO")


def test_synthetic_markets_of_any_size_keep_the_story_first() -> None:
    assert [s.symbol for s in synthetic_specs(4)] == [
        "BTC/USDT",
        "PEPE/USDT",
        "JUP/USDT",
        "USDC/USDT",
    ]
    assert {s.symbol for s in synthetic_specs(10)} == {s.symbol for s in DEFAULT_SYMBOLS}
    big = synthetic_specs(50)
    assert len({s.symbol for s in big}) == 50 and big[:10] == DEFAULT_SYMBOLS
    assert extra_symbol_specs(3) == extra_symbol_specs(5)[:3]  # each a function of its name
    assert all(s.listed_days_before_anchor >= 60 for s in big[10:])
    top = min(s.daily_quote_volume for s in DEFAULT_SYMBOLS)
    assert all(s.daily_quote_volume < top for s in big[10:])


def test_default_blacklist_drops_leveraged_tokens_but_keeps_jup() -> None:
    blacklist = Settings().universe.blacklist
    assert is_blacklisted("BTCUP/USDT", blacklist) and is_blacklisted("ETHDOWN/USDT", blacklist)
    assert not is_blacklisted("JUP/USDT", blacklist)


# --- whole simulations -------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_day_twice() -> tuple[Summary, Summary]:
    """BTC trains at startup, JUP enters at the first refresh, USDC fails 4 times, PEPE waits."""
    return simulate(1, 4), simulate(1, 4)


def test_same_seed_and_settings_give_the_same_summary(
    one_day_twice: tuple[Summary, Summary],
) -> None:
    first, second = (msgspec.to_builtins(s) for s in one_day_twice)
    assert first["orders"] > 50  # it did trade: there is something to differ
    assert without_wall_fields(first) == without_wall_fields(second)


def test_symbols_trained_together_become_active_in_the_same_order_every_run() -> None:
    # One position slot and a threshold every signal passes: whichever symbol becomes
    # ACTIVE first takes the slot. Three fits finish at the same virtual time in an order
    # set by thread timing; the simulation hands their results back in symbol order.
    settings = msgspec.convert(
        {
            "training": {"window_days": 4, "max_iter": 30},
            "trading": {**HOLD, "max_open_positions": 1},
            "promotion": PROMOTE_ANY,
        },
        type=Settings,
    )
    for _ in range(2):
        summary = supervisor.simulate(settings, days=0.01, symbols=6)
        holders = {name for name, s in summary.symbols.items() if s.orders}
        assert holders == {"BTC/USDT"}


def test_a_different_seed_gives_a_different_market() -> None:
    other = simulate(0.1, 1, seed=8)
    base = simulate(0.1, 1)
    assert other.equity_curve != base.equity_curve


def test_summary_tells_the_story_of_a_day(one_day_twice: tuple[Summary, Summary]) -> None:
    s = one_day_twice[0]
    assert s.sim_seconds == DAY_S and s.days == 1 and s.seed == 7
    assert s.invariant_violations == [] and s.duplicate_trainings == 0
    assert s.coverage_checks_by_trigger == {"startup": 1, "tick": 264, "universe": 23}
    assert s.coverage_checks == 288 and s.universe_refreshes == 24
    assert s.heartbeats == 143  # every 600 s; the one due at the very end is not delivered
    assert s.model_reloads_by_trigger == {"published": 2, "startup": 1}
    assert s.models_published == 2 and s.model_reloads == 3
    assert set(s.symbols) == {"BTC/USDT", "JUP/USDT", "PEPE/USDT", "USDC/USDT"}
    btc, jup, pepe, usdc = (s.symbols[k] for k in sorted(s.symbols))
    assert (btc.final_state, btc.trainings_started, btc.became_active_at) == (
        "ACTIVE",
        1,
        "2026-11-26 00:00:00 UTC",
    )
    assert (jup.final_state, jup.trainings_started, jup.became_active_at) == (
        "ACTIVE",
        1,
        "2026-11-26 01:00:00 UTC",
    )
    assert (pepe.final_state, pepe.trainings_started, pepe.orders) == ("BLOCKED_HISTORY", 0, 0)
    assert (usdc.final_state, usdc.trainings_started, usdc.trainings_failed) == (
        "BLOCKED_FAILED",
        4,
        4,
    )
    assert [start for start, _, _ in usdc.trainings] == pytest.approx(
        [0, 1 / 6, 0.5, 7 / 6], abs=1e-3
    )
    assert s.orders == btc.orders + jup.orders == s.fills + s.orders_failed
    # the per-symbol pnl adds up to what the trader's equity says
    assert sum(x.pnl for x in s.symbols.values()) == pytest.approx(
        s.final_equity - s.starting_balance, abs=0.01
    )
    equity = [e for _, e in s.equity_curve]
    assert len(equity) == 145 and equity[-1] == s.final_equity
    # the first sample follows the first candle's entries: their fees and slippage only
    assert equity[0] == pytest.approx(s.starting_balance, rel=1e-3)
    assert 0 < s.max_drawdown < 0.1 and math.isfinite(s.speedup) and s.speedup > 0
    assert s.training.window_days == 4 and s.training.pool == "thread"


def test_report_and_summary_files(one_day_twice: tuple[Summary, Summary], tmp_path: Path) -> None:
    summary = one_day_twice[0]
    json_path, html_path = write(tmp_path / "out", summary)
    decoded = json.loads(json_path.read_text())
    required = {
        *("sim_seconds", "wall_seconds", "speedup", "coverage_checks", "universe_refreshes"),
        *("model_reloads", "models_published", "heartbeats", "duplicate_trainings"),
        *("invariant_violations", "orders", "fills", "final_equity", "max_drawdown", "symbols"),
    }
    assert required <= set(decoded)
    assert {"fees_quote", "round_trips", "win_rate", "buy_hold_return_pct"} <= set(decoded)
    per_symbol = {"final_state", "trainings_started", "trainings_failed", "became_active_at"}
    per_symbol |= {"fees_quote", "round_trips", "net_pnl", "buy_hold_return_pct", "gate"}
    assert per_symbol | {"orders", "pnl", "trades_per_day"} <= set(decoded["symbols"]["BTC/USDT"])
    btc = summary.symbols["BTC/USDT"]
    assert btc.gate is not None and btc.gate.promoted and btc.gate.version is not None
    assert btc.round_trips > 0 and btc.fees_quote > 0
    assert summary.fees_quote == pytest.approx(sum(x.fees_quote for x in summary.symbols.values()))
    sides = [m.side for m in btc.trades]
    if sides.count("buy") == sides.count("sell"):  # flat at the end: all it made was sold
        assert btc.net_pnl == pytest.approx(btc.pnl, abs=1e-4)
    assert msgspec.json.decode(json_path.read_bytes(), type=Summary) == summary
    page = html_path.read_text()
    assert page.count('src="data:image/png;base64,') == 3  # equity, lifecycle, prices
    assert "every invariant held" in page and "USDC/USDT" in page
    digest = format_summary(summary)
    assert "duplicate_trainings: 0" in digest and "invariant_violations: none" in digest


# --- deliberately broken actors are caught ------------------------------------------------


class EagerCoverage(CoverageActor):
    """The old bot's bug: coverage re-evaluated on every 60 s trader loop, no interval gate."""

    def started(self) -> None:
        super().started()
        self.every(60, CoverageTick)

    def _on_coverage_tick(self) -> None:
        if self.models_known:
            self._evaluate_all(CoverageTrigger.TICK)


class ImpatientCoverage(CoverageActor):
    """Starts a trainer for a symbol it has just blocked for short history."""

    def _apply(self, symbol: str, event: Any) -> Any:
        step = super()._apply(symbol, event)
        if step.record.state is SymbolState.BLOCKED_HISTORY:
            self.trainers.start(symbol)
        return step


def test_monitor_catches_coverage_that_ignores_its_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_system, "CoverageActor", EagerCoverage)
    summary = simulate(0.05, 1)  # 72 minutes
    violations = summary.invariant_violations
    assert violations and all("(invariant 2)" in v for v in violations)
    assert "2026-11-26 00:01:00 UTC: coverage check 60 s after the previous one" in violations[0]
    assert summary.coverage_checks_by_trigger["tick"] > 60


def test_monitor_catches_training_of_a_symbol_blocked_for_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_system, "CoverageActor", ImpatientCoverage)
    summary = simulate(0.01, 2)  # BTC and PEPE
    assert summary.symbols["PEPE/USDT"].trainings_started >= 1
    assert any(
        v.startswith("2026-11-26 00:00:00 UTC: PEPE/USDT: trainer started while BLOCKED_HISTORY")
        for v in summary.invariant_violations
    )
    assert any("(invariant 3)" in v for v in summary.invariant_violations)


# --- the supervisor works in a simulation as in a live run -----------------------------


class CrashOnceTrader(TraderActor):
    """Raises on the first trade tick after 30 minutes, once per test."""

    crashes: list[float] = []

    def receive(self, message: Any) -> Any:
        if isinstance(message, TradeTick) and message.at >= T + 1800 and not self.crashes:
            self.crashes.append(message.at)
            raise RuntimeError("simulated crash")
        return super().receive(message)


class CrashingTrader(TraderActor):
    """After 10 minutes it dies on its next tick, and then at every start."""

    def started(self) -> None:
        if self.clock.now() >= T + 600:
            raise RuntimeError("cannot start")
        super().started()

    def receive(self, message: Any) -> Any:
        if isinstance(message, TradeTick) and message.at >= T + 600:
            raise RuntimeError("simulated crash")
        return super().receive(message)


def test_a_crashed_trader_is_restarted_and_the_run_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CrashOnceTrader, "crashes", [])
    monkeypatch.setattr(app_system, "TraderActor", CrashOnceTrader)
    summary = simulate(0.05, 1)
    assert CrashOnceTrader.crashes == [T + 1802]
    assert summary.actor_restarts == 1 and summary.stopped_early is None
    assert summary.invariant_violations == [] and summary.sim_seconds == 0.05 * DAY_S
    traded = [t for t, _ in summary.equity_curve]
    assert traded[-1] * 3600 == pytest.approx(0.05 * DAY_S, abs=120)  # sampled to the end


def test_a_trader_that_keeps_dying_stops_the_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_system, "TraderActor", CrashingTrader)
    summary = simulate(0.05, 1)
    assert summary.actor_restarts == 3  # the budget: 3 restarts within 60 s, the 4th death stops
    assert summary.stopped_early == "trader died too often, last: RuntimeError: cannot start"
    assert summary.sim_seconds == 602  # the first trade tick after 10 minutes
    assert "the bot STOPPED early" in format_summary(summary)


@pytest.mark.slow
def test_simulate_command_writes_report_and_exits_0(tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        "training: {window_days: 3, max_iter: 20}\n"
        "promotion: {min_net_return_pct: -100, min_auc: 0}\n"
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            *(sys.executable, "supervisor.py", "simulate", "--days", "0.05", "--symbols", "2"),
            *("--settings", str(settings), "--out", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "duplicate_trainings: 0" in proc.stdout
    assert "invariant_violations: none" in proc.stdout
    assert "Simulated 0.05 days from 2026-11-26 00:00:00 UTC (2 symbols, seed 7)" in proc.stdout
    assert (out / "report.html").exists() and (out / "summary.json").exists()
    log_text = (out / "simulation.log").read_text()
    # INFO goes to the log file, stamped with virtual time; the terminal stays quiet
    assert "2026-11-26 00:00:00 INFO    tradeactors.coverage     BTC/USDT: NEW -> TRAINING" in (
        log_text
    )
    assert "INFO" not in proc.stderr
