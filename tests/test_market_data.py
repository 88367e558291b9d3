"""Market data as messages: the candle feed's windows and requests, and the trader deciding
from `CandlesClosed` without a REST call of its own."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.base import Runtime, Topic
from actors.market_data import MarketDataActor
from actors.messages import (
    CandlesClosed,
    FetchCandles,
    ModelsUpdated,
    SignalProduced,
    SymbolStates,
)
from app.builders import build_paper_exchange
from config.settings import TradingSettings
from core.timeframes import MINUTE_MS
from exchange.candle_feed import CandleFeed, Request, ending_at, merge, plan
from exchange.paper import PaperExchange
from exchange.synthetic import SyntheticMarket
from exchange.types import Candle, TransientExchangeError
from policy.lifecycle import SymbolRecord, SymbolState
from storage.ledger import MemoryLedger
from tests.harness import T0, Recorder, new_clock, published_model, settle, start_trader

M = MINUTE_MS
CLOSE_MS = int(T0 * 1000) + 10 * M  # a candle close well after the market's anchor


class Counting:
    """The paper exchange, counting fetch_ohlcv calls; `hold` blocks one symbol's fetch until
    released, `fail` makes one symbol's fetch fail."""

    def __init__(self, inner: PaperExchange) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[str, int | None, int]] = []
        self.hold: dict[str, threading.Event] = {}
        self.fail: dict[str, str] = {}
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int = 1000
    ) -> list[Candle]:
        with self._lock:
            self.calls.append((symbol, since_ms, limit))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if symbol in self.hold:
                self.hold[symbol].wait(10)
            if symbol in self.fail:
                raise TransientExchangeError(self.fail[symbol])
            return self.inner.fetch_ohlcv(symbol, timeframe, since_ms=since_ms, limit=limit)
        finally:
            with self._lock:
                self.in_flight -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def paper() -> tuple[PaperExchange, Any]:
    clock = new_clock(T0 + 3600)
    return build_paper_exchange(SyntheticMarket(anchor_ms=int(T0 * 1000)), clock), clock


# --- pure parts -------------------------------------------------------------------------


def test_plan_asks_for_the_whole_window_once_then_only_the_new_candles() -> None:
    assert plan(None, 100 * M, M, 66) == Request(35 * M, 66)
    assert plan(99 * M, 100 * M, M, 66) == Request(100 * M, 1)
    assert plan(97 * M, 100 * M, M, 66) == Request(98 * M, 3)  # a missed close: the gap too
    assert plan(100 * M, 100 * M, M, 66) is None  # already there: no request
    assert plan(10 * M, 100 * M, M, 66) == Request(35 * M, 66)  # too far behind: all again


def test_merge_appends_only_newer_rows_keeps_the_last_bars_and_is_read_only() -> None:
    rows = np.array([[t * M, 1, 1, 1, 1, 1] for t in range(5)], dtype=np.float64)
    window = merge(None, rows, 4)
    assert list(window[:, 0] // M) == [1, 2, 3, 4]
    newer = np.array([[t * M, 2, 2, 2, 2, 2] for t in range(3, 7)], dtype=np.float64)
    window = merge(window, newer, 4)
    assert list(window[:, 0] // M) == [3, 4, 5, 6]
    assert window[0, 4] == 1  # the row it had is kept, not overwritten by the refetch
    with pytest.raises(ValueError, match="read-only"):
        window[0, 0] = 0
    assert list(ending_at(window, 5 * M)[:, 0] // M) == [3, 4, 5]


# --- the feed over the paper exchange ---------------------------------------------------


def test_the_feed_serves_the_same_window_as_one_full_fetch(
    paper: tuple[PaperExchange, Any],
) -> None:
    exchange, _ = paper
    counting = Counting(exchange)
    feed = CandleFeed(counting, "1m", 66)  # type: ignore[arg-type]
    for close in (CLOSE_MS, CLOSE_MS + M, CLOSE_MS + 3 * M):
        result = feed.fetch(["BTC/USDT"], close)
        full = exchange.fetch_ohlcv("BTC/USDT", "1m", since_ms=close - 66 * M, limit=66)
        assert result.missing == {}
        np.testing.assert_array_equal(result.candles["BTC/USDT"], np.asarray(full))
    # the whole window once, then the one new candle, then the two of a missed close
    assert [(c[2]) for c in counting.calls] == [66, 1, 2]


def test_a_candle_not_closed_yet_is_missing_with_the_reason(
    paper: tuple[PaperExchange, Any],
) -> None:
    exchange, clock = paper
    feed = CandleFeed(exchange, "1m", 66)
    future_close = int(clock.now() * 1000) + 5 * M
    result = feed.fetch(["BTC/USDT"], future_close)
    assert result.candles == {}
    assert "is not closed on paper yet" in result.missing["BTC/USDT"]


def test_requests_run_concurrently_bounded_and_a_slow_symbol_misses_only_itself(
    paper: tuple[PaperExchange, Any],
) -> None:
    exchange, _ = paper
    counting = Counting(exchange)
    counting.hold["ETH/USDT"] = threading.Event()  # never answers within the deadline
    counting.fail["SOL/USDT"] = "paper: connection reset"
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT", "LINK/USDT"]
    feed = CandleFeed(counting, "1m", 66, max_in_flight=3, deadline_s=0.5)  # type: ignore[arg-type]
    try:
        result = feed.fetch(symbols, CLOSE_MS)
    finally:
        counting.hold["ETH/USDT"].set()
        feed.close()
    assert sorted(result.candles) == ["ADA/USDT", "BTC/USDT", "LINK/USDT", "XRP/USDT"]
    assert result.missing == {
        "ETH/USDT": "no answer within 0.5 s",
        "SOL/USDT": "paper: connection reset",
    }
    assert 1 < counting.most_in_flight <= 3


# --- the actors -------------------------------------------------------------------------


class NoCandlesForTheTrader:
    """The trader's own exchange (orders): asking it for candles fails the test."""

    def __init__(self, inner: PaperExchange) -> None:
        self.inner = inner

    def fetch_ohlcv(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the trader fetched candles itself")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_market_data_replies_one_message_for_every_symbol_asked(
    paper: tuple[PaperExchange, Any],
) -> None:
    exchange, clock = paper
    runtime, probe = Runtime(), Recorder()
    ref = MarketDataActor.start(
        clock=clock, exchange=exchange, timeframe="1m", bars=66, runtime=runtime
    )
    ref.tell(
        FetchCandles(
            at=clock.now(), symbols=("BTC/USDT", "NOPE/USDT"), close_ms=CLOSE_MS, reply_to=probe
        )
    )
    settle(runtime)
    [reply] = probe.of(CandlesClosed)
    assert reply.close_ms == CLOSE_MS and list(reply.candles) == ["BTC/USDT"]
    assert int(reply.candles["BTC/USDT"][-1, 0]) == CLOSE_MS - M
    assert "unknown symbol 'NOPE/USDT'" in reply.missing["NOPE/USDT"]


def test_the_trader_decides_from_candles_closed_and_never_fetches_candles(
    paper: tuple[PaperExchange, Any], tmp_path: Path
) -> None:
    exchange, clock = paper
    runtime, events = Runtime(), Recorder()
    trader = start_trader(
        clock=clock,
        exchange=NoCandlesForTheTrader(exchange),
        market_exchange=exchange,
        ledger=MemoryLedger(),
        trading=TradingSettings(entry_threshold=1.0),
        store=Recorder(),
        coverage=Recorder(),
        events=Topic({"probe": events}),
        runtime=runtime,
    )
    model = published_model(tmp_path, "BTC/USDT")
    trader.tell(ModelsUpdated(version=model.version, symbols=(), models={"BTC/USDT": model}))
    trader.tell(SymbolStates(records=(SymbolRecord(symbol="BTC/USDT", state=SymbolState.ACTIVE),)))
    settle(runtime)
    clock.advance(180)  # two closes, each decided 2 s after it (candle_delay_s)
    settle(runtime)
    signals = events.of(SignalProduced)
    assert [s.symbol for s in signals] == ["BTC/USDT"] * 3  # at once, then at two closes
    assert len({s.candle_ms for s in signals}) == 3
