"""The log a person reads (issue 13): one line per symbol's decision, one per model published,
a download as one line, and one summary line per candle with the money and the symbols."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from actors.base import Runtime
from app.builders import build_paper_exchange
from config.settings import TradingSettings
from core.progress import progress_of
from exchange.synthetic import SyntheticMarket
from policy.lifecycle import SymbolState
from policy.results import TradeBook
from policy.summary import summary_line
from storage.ledger import MemoryLedger
from tests.harness import (
    HOLD,
    T0,
    Bot,
    Recorder,
    make_tradable,
    new_clock,
    published_model,
    settle,
    start_trader,
)
from tests.test_trade_results import fill


def test_the_summary_says_money_then_symbols() -> None:
    states = [
        SymbolState.ACTIVE,
        SymbolState.TRAINING,
        SymbolState.NEW,
        SymbolState.NO_EDGE,
        SymbolState.NO_EDGE,
        SymbolState.BLOCKED_HISTORY,
        SymbolState.RETIRED,
    ]
    line = summary_line(
        equity=10_012.4,
        quote="USDT",
        realized_pnl=10.126,
        unrealized_pnl=-2.5,
        open_positions=1,
        states=states,
    )
    assert line == (
        "Summary: equity 10,012.40 USDT, realized PnL +10.13 USDT, unrealized PnL -2.50 USDT, "
        "1 open position; symbols: 1 active, 2 training, 3 blocked (2 no edge, 1 short history)"
    )
    before_balances = summary_line(
        equity=math.nan,
        quote="USDT",
        realized_pnl=0.0,
        unrealized_pnl=0.0,
        open_positions=0,
        states=[],
        paused=True,
    )
    assert before_balances == (
        "Summary: equity unknown, realized PnL +0.00 USDT, unrealized PnL +0.00 USDT, "
        "0 open positions, trading paused; symbols: 0 active, 0 training, 0 blocked"
    )


def test_unrealized_pnl_counts_the_entry_fee_like_realized_pnl() -> None:
    book = TradeBook()
    book.add(fill("buy", 2.0, 100.0, 0.20, 1.0, symbol="A/USDT"))
    book.add(fill("buy", 1.0, 10.0, 0.01, 2.0, symbol="B/USDT"))
    book.add(fill("sell", 1.0, 110.0, 0.11, 3.0, symbol="A/USDT"))
    # A: 1 left of cost 100.10 each, worth 120; B has no price yet: counted at its cost
    assert book.unrealized({"A/USDT": 120.0}) == pytest.approx(120.0 - 100.10)
    assert book.stats().realized_pnl == pytest.approx(110.0 - 0.11 - 100.10)


def test_the_trader_logs_one_summary_per_candle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tradeactors.trader")
    clock, runtime = new_clock(T0 + 3630), Runtime()
    exchange = build_paper_exchange(SyntheticMarket(anchor_ms=int(T0 * 1000)), clock)
    trader = start_trader(
        clock=clock,
        exchange=exchange,
        ledger=MemoryLedger(),
        trading=TradingSettings(**HOLD),  # buys at its first signal and holds
        store=Recorder(),
        coverage=Recorder(),
        runtime=runtime,
    )
    make_tradable(trader, {"BTC/USDT": published_model(tmp_path, "BTC/USDT")})
    settle(runtime)
    for _ in range(3):
        clock.advance(60)
        settle(runtime)
    summaries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Summary:")]
    assert len(summaries) == 3
    last = summaries[-1]
    assert "equity 9,99" in last or "equity 10,0" in last  # 10,000 USDT less fees, +/- price
    assert "realized PnL +0.00 USDT" in last
    assert "1 open position; symbols: 1 active, 0 training, 0 blocked" in last
    assert "unrealized PnL +0.00 USDT" not in last  # the entry fee at least


def test_a_training_says_one_line_per_step_that_matters(
    bots: list[Bot], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bot = Bot(tmp_path, ["ETH/USDT"])
    bots.append(bot)
    bot.start()
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("ETH/USDT:") and progress_of(r) is None
    ]
    assert [line.split(" (")[0] for line in lines] == [
        "ETH/USDT: NEW -> TRAINING",
        "ETH/USDT: history ready: 5,760 candles",
        "ETH/USDT: model v000001 published",
        "ETH/USDT: TRAINING -> ACTIVE",
    ], lines
    steps = [r for r in caplog.records if progress_of(r) is not None]
    assert steps and all(r.getMessage().startswith("ETH/USDT: history download") for r in steps)
