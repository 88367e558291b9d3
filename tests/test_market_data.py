"""Market data as messages: the candle feed's windows and requests, and the trader deciding
from `CandlesClosed` without a REST call of its own."""

from __future__ import annotations

import logging
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
    SignalProduced,
)
from app.builders import build_paper_exchange
from config.settings import TradingSettings
from core.timeframes import MINUTE_MS
from exchange.candle_feed import CandleFeed, Request, ending_at, merge, plan
from exchange.paper import PaperExchange
from exchange.synthetic import SyntheticMarket
from exchange.types import Candle, TransientExchangeError
from policy.trade_lines import missing_lines
from storage.ledger import MemoryLedger
from tests.harness import (
    T0,
    Recorder,
    make_tradable,
    new_clock,
    published_model,
    settle,
    start_trader,
)

M = MINUTE_MS
KLINES = "/api/v3/klines"
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
    make_tradable(trader, {"BTC/USDT": model})
    settle(runtime)
    clock.advance(150)  # two closes (T0+3660, +3720), each decided 2 s after it
    settle(runtime)
    signals = events.of(SignalProduced)
    assert [s.symbol for s in signals] == ["BTC/USDT"] * 3  # at once, then at each close
    assert len({s.candle_ms for s in signals}) == 3


def test_symbols_missing_for_one_reason_are_one_log_line() -> None:
    ban = "fetch_ohlcv not sent: IP banned by binance (HTTP 418) for 5 s; 5 s left"
    missing = {f"X{i:03d}/USDT": f"X{i:03d}/USDT: {ban}" for i in range(1, 8)}
    missing["BTC/USDT"] = "no answer within 5 s"
    assert missing_lines(missing) == [
        "BTC/USDT: no market data this candle: no answer within 5 s",
        "7 symbols (X001/USDT, X002/USDT, X003/USDT, X004/USDT, X005/USDT and 2 more): "
        f"no market data this candle: {ban}",
    ]


def test_a_ban_fails_the_candle_at_once_with_its_end_and_the_next_candle_repairs_the_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The market-data client against the loopback fake Binance: a 418 "banned until" fails
    every symbol's request at once (one sent, none waited), and the candle after the ban
    is decided with the missed candle filled in."""
    from exchange.ccxt_client import CcxtConfig
    from exchange.ccxt_exchange import CcxtExchange
    from exchange.credentials import Credentials
    from exchange.retry import RetryPolicy
    from tests.fake_binance import API_KEY, API_SECRET, FakeBinance
    from tests.fake_time import FakeTime

    caplog.set_level(logging.INFO)
    clock = new_clock(T0 + 3630)  # mid-candle
    waits = FakeTime()
    symbols = ["BTC/USDT", "ETH/USDT"]
    with FakeBinance(anchor_ms=int(T0 * 1000), market_ms=lambda: int(clock.now() * 1000)) as fake:
        market = CcxtExchange(
            CcxtConfig(base_url=fake.url, retry=RetryPolicy(deadline_s=3.0, max_wait_s=3.0)),
            Credentials(API_KEY, API_SECRET),
            now_ms=lambda: int(clock.now() * 1000),
            sleep=waits.sleep,
            monotonic=waits.monotonic,
            role="market data",
        )
        paper = build_paper_exchange(SyntheticMarket(anchor_ms=int(T0 * 1000)), clock)
        runtime, events = Runtime(), Recorder()
        trader = start_trader(
            clock=clock,
            exchange=paper,
            market_exchange=market,
            max_in_flight=1,  # one after another: the first refusal stops the second
            deadline_s=3.0,
            ledger=MemoryLedger(),
            trading=TradingSettings(entry_threshold=1.0),
            store=Recorder(),
            coverage=Recorder(),
            events=Topic({"probe": events}),
            runtime=runtime,
        )
        model = published_model(tmp_path, "BTC/USDT")
        make_tradable(trader, dict.fromkeys(symbols, model))
        settle(runtime)
        assert len(events.of(SignalProduced)) == 2  # both decided on the last closed candle
        clock.advance(32)  # the next close (T0+3660), decided 2 s after it
        settle(runtime)
        assert len(events.of(SignalProduced)) == 4
        until_ms = int(T0 + 3752) * 1000  # 30 s after the next decision at T0 + 3722
        fake.fail(
            KLINES, 418, -1003, f"Way too much request weight used; IP banned until {until_ms}."
        )
        sent = fake.count("GET", KLINES)
        clock.advance(60)  # the next close comes during the ban
        settle(runtime)
        assert len(events.of(SignalProduced)) == 4  # that candle is not decided ...
        assert fake.count("GET", KLINES) == sent + 1  # ... one request was refused, no other sent
        assert waits.sleeps == []  # and nothing waited for the ban to end
        ban = "IP banned by binance (HTTP 418) for 30 s, until 2026-11-26 01:02:32 UTC"
        assert "BTC/USDT: no market data this candle: fetch_ohlcv failed after 1" in caplog.text
        assert f"({ban})" in caplog.text
        not_sent = f"ETH/USDT: no market data this candle: fetch_ohlcv not sent: {ban}; 30 s left"
        assert not_sent in caplog.text
        waits.t += 65  # the ban is over
        clock.advance(60)
        settle(runtime)
        signals = events.of(SignalProduced)
        assert len(signals) == 6  # the candle after the ban is decided for both symbols
        windows = [c for c in fake.requests if c.path == KLINES][-2:]
        assert {w.params["limit"] for w in windows} == {"2"}  # the missed candle and the new one
        market.close()
