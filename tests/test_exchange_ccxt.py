"""CcxtExchange driving the real `ccxt.binance` client against the loopback fake Binance.

No internet: every URL of the client points at `tests/fake_binance.py` on 127.0.0.1.
Waits (backoff, Retry-After, bans, the recvWindow before an order lookup) go through
an injected fake sleep that records them and moves a fake monotonic clock: nothing
here sleeps. The only real waiting is ccxt's own HTTP timeout (300 ms) on the
timeouts the fake injects.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import msgspec
import pytest

from config.settings import Settings, SettingsError, load_settings
from core.timeframes import DAY_MS, MINUTE_MS
from exchange.ccxt_client import CcxtConfig
from exchange.ccxt_exchange import CcxtExchange
from exchange.credentials import API_KEY_ENV, API_SECRET_ENV, Credentials, MissingCredentials
from exchange.gate import ServerGate
from exchange.retry import RetryPolicy
from exchange.synthetic import SymbolSpec
from exchange.types import (
    AuthenticationFailed,
    ExchangeError,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    Side,
    TransientExchangeError,
)
from policy.universe import select_universe
from storage.candles import CandleCache, download
from tests.fake_binance import API_KEY, API_SECRET, FakeBinance
from tests.fake_time import FakeTime

ROOT = Path(__file__).resolve().parents[1]
ORDER = "/api/v3/order"
KLINES = "/api/v3/klines"


def real_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    with FakeBinance() as f:
        yield f


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


def connect(
    fake: FakeBinance,
    clock: FakeTime,
    secret: str = API_SECRET,
    gate: ServerGate | None = None,
    **config: Any,
) -> CcxtExchange:
    settings: dict[str, Any] = {"base_url": fake.url, "timeout_ms": 300, "rate_limit": False}
    return CcxtExchange(
        CcxtConfig(**{**settings, **config}),
        Credentials(API_KEY, secret),
        now_ms=real_ms,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        gate=gate,
    )


@pytest.fixture
def ex(fake: FakeBinance, clock: FakeTime) -> Iterator[CcxtExchange]:
    exchange = connect(fake, clock)
    exchange.load_markets()
    yield exchange
    exchange.close()


def buy(symbol: str, amount: float, coid: str, **kw: Any) -> OrderRequest:
    return OrderRequest(symbol=symbol, side=Side.BUY, amount=amount, client_order_id=coid, **kw)


# --- wiring: URLs, modes, spot-only markets, error tables ---------------------------------


@pytest.mark.parametrize("mode", ["sandbox", "demo", "live"])
def test_every_url_points_at_base_url_in_each_mode(
    fake: FakeBinance, clock: FakeTime, mode: str
) -> None:
    ex = connect(fake, clock, mode=mode)
    client = ex._client.api
    assert client.isSandboxModeEnabled is (mode == "sandbox")
    assert bool(client.options.get("enableDemoTrading")) is (mode == "demo")

    def urls(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [u for v in value.values() for u in urls(v)]
        return [value] if isinstance(value, str) and "://" in value else []

    # api, test, demo and the backups ccxt made of api when switching mode
    keys = set(client.urls) - {"logo", "www", "doc"}
    assert {"api", "test", "demo"} <= keys
    api_urls = [u for key in keys for u in urls(client.urls[key])]
    assert len(api_urls) >= 36 and all(u.startswith(fake.url + "/") for u in api_urls)
    # load_markets asks exchangeInfo and the server time, nothing else (no sapi)
    markets = ex.load_markets()
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", "/api/v3/exchangeInfo"),
        ("GET", "/api/v3/time"),
    ]
    btc = markets["BTC/USDT"]
    assert (btc.base, btc.quote, btc.active, btc.spot) == ("BTC", "USDT", True, True)
    assert (btc.min_amount, btc.amount_step, btc.price_step, btc.min_notional) == (
        1e-6,
        1e-6,
        0.01,
        5.0,
    )
    assert markets["JUP/USDT"].active is False  # listed, not trading yet
    # a URL the rewrite missed would fail here instead of leaving the machine
    with pytest.raises(ccxt.ExchangeError, match="outside base_url"):
        client.fetch("https://api.binance.com/api/v3/time")
    assert fake.unknown == []


def test_errors_map_with_binance_spot_table_as_in_production(
    ex: CcxtExchange, fake: FakeBinance, clock: FakeTime
) -> None:
    # -1004 is OperationFailed (retryable) in ccxt's spot table and OperationRejected in its
    # generic one: ccxt picks the spot table by host name (api.binance.com, testnet...).
    assert issubclass(ex._client.api.exceptions["spot"]["exact"]["-1004"], ccxt.OperationFailed)
    assert not issubclass(ex._client.api.exceptions["exact"]["-1004"], ccxt.OperationFailed)
    fake.fail(KLINES, 400, -1004, "Server is busy, please wait and try again")
    assert len(ex.fetch_ohlcv("BTC/USDT", "1m", limit=3)) == 3
    assert clock.sleeps == [0.5]  # retried, as against the real testnet host


# --- market data ------------------------------------------------------------------------


def test_fetch_ohlcv_returns_closed_candles_only(ex: CcxtExchange, fake: FakeBinance) -> None:
    candles = ex.fetch_ohlcv("BTC/USDT", "1m", limit=5)
    now = fake.server_ms()
    assert len(candles) == 5
    assert [c[0] for c in candles] == [candles[0][0] + i * MINUTE_MS for i in range(5)]
    # the newest is the last CLOSED one: the forming candle (now) is dropped
    assert candles[-1][0] + MINUTE_MS <= now < candles[-1][0] + 2 * MINUTE_MS + 5_000
    expected = fake.market.ohlcv("BTC/USDT", "1m", int(candles[0][0]), int(candles[-1][0]) + 1)
    assert [c[4] for c in candles] == pytest.approx(expected[:, 4].tolist(), rel=1e-8)
    hourly = ex.fetch_ohlcv("BTC/USDT", "1h", since_ms=now - 5 * 3_600_000, limit=10)
    assert all(c[0] + 3_600_000 <= now for c in hourly) and 4 <= len(hourly) <= 5


def test_history_start_gives_exact_history_days(ex: CcxtExchange, fake: FakeBinance) -> None:
    now = fake.server_ms()
    for symbol, days in [("BTC/USDT", 2000), ("PEPE/USDT", 12.5), ("WIF/USDT", 3)]:
        start = ex.history_start_ms(symbol)
        assert start == fake.market.listed_ms(symbol)
        assert (now - start) / DAY_MS == pytest.approx(days, abs=0.01)
    # 1d since=0 limit=1, then the first minute of that day; cached afterwards
    assert fake.count("GET", KLINES) == 6
    ex.history_start_ms("PEPE/USDT")
    assert fake.count("GET", KLINES) == 6
    first = [r.params for r in fake.requests if r.path == KLINES][:2]
    assert first[0] | {"symbol": "BTCUSDT"} == {
        "symbol": "BTCUSDT",
        "interval": "1d",
        "startTime": "0",
        "limit": "1",
    }
    assert first[1]["interval"] == "1m" and first[1]["limit"] == "1"


def test_download_pages_over_100k_candles_and_resumes(
    tmp_path: Path, clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    old = SymbolSpec("OLD/USDT", 70, 25.0, 0.0012, 0.3, 5e7)  # 70 days = 100,800 candles
    with FakeBinance([old]) as fake:
        ex = connect(fake, clock)
        start = ex.history_start_ms("OLD/USDT")
        assert start is not None
        now = fake.server_ms()
        until = now - now % MINUTE_MS  # the forming candle's open
        expected = (until - start) // MINUTE_MS
        assert (until - start) / DAY_MS == pytest.approx(70, abs=0.01)
        assert expected >= 100_000
        cache = CandleCache(tmp_path)
        # the exchange goes away for good after 50 pages: the download stops there ...
        fake.fail(KLINES, 503, raw_body="<html>503 Service Unavailable</html>", times=5, after=50)
        before = fake.count("GET", KLINES)
        with pytest.raises(TransientExchangeError, match="after 5 attempts"):
            download(cache, ex, "OLD/USDT", "1m", start, until)
        assert len(cache.read(ex.name, "OLD/USDT", "1m")) == 50_000
        assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]  # bounded backoff, then it gave up
        # ... and resumes after the last stored candle
        progress: list[tuple[int, int]] = []
        rows = download(
            cache, ex, "OLD/USDT", "1m", start, until, progress=lambda *a: progress.append(a)
        )
        pages = fake.count("GET", KLINES) - before
    assert len(rows) == expected
    assert rows[0, 0] == start and rows[-1, 0] == until - MINUTE_MS
    assert (rows[1:, 0] - rows[:-1, 0] == MINUTE_MS).all()  # no gap, no duplicate
    assert pages == 50 + 5 + -(-(expected - 50_000) // 1000)
    assert progress[-1] == (expected - 50_000, expected - 50_000)
    cursors = [int(r.params["startTime"]) for r in fake.requests if r.path == KLINES][-3:]
    assert cursors[1] - cursors[0] == 1000 * MINUTE_MS  # since = last + tf, 1000 a page
    assert "retry 1/4 in 0.5 s" in caplog.text and "giving up after 5 attempts" in caplog.text


def test_universe_ranks_by_quote_volume_minus_blacklist_one_ticker_call(
    clock: FakeTime,
) -> None:
    specs = [
        SymbolSpec("BTC/USDT", 900, 60_000.0, 0.001, 0.3, 1.0e9),
        SymbolSpec("BTCUP/USDT", 900, 10.0, 0.001, 0.3, 5.0e9),  # leveraged token: blacklisted
        SymbolSpec("ETH/BTC", 900, 0.05, 0.001, 0.3, 9.0e9),  # another quote
        SymbolSpec("ETH/USDT", 900, 3_000.0, 0.001, 0.3, 4.0e8),
        SymbolSpec("SOL/USDT", 900, 150.0, 0.001, 0.3, 1.5e8),
        SymbolSpec("XRP/USDT", 900, 0.5, 0.001, 0.3, 6.0e7),
        SymbolSpec("JUP/USDT", 900, 0.9, 0.001, 0.3, 8.0e9, opens_after_s=1800),  # not trading
    ]
    with FakeBinance(specs) as fake:
        ex = connect(fake, clock)
        top = select_universe(
            ex.load_markets(),
            ex.fetch_tickers(),
            quote="USDT",
            top_n=3,
            blacklist=("*UP/USDT", "*DOWN/USDT"),
        )
        assert top == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
        ex.fetch_tickers()  # within tickers_ttl_s: the cached ones
        assert fake.count("GET", "/api/v3/ticker/24hr") == 1
        clock.t += 61
        ex.fetch_tickers()
        assert fake.count("GET", "/api/v3/ticker/24hr") == 2
        params = [r.params for r in fake.requests if r.path == "/api/v3/ticker/24hr"]
        assert params == [{}, {}]  # all symbols in one request


# --- orders ------------------------------------------------------------------------------


def test_min_notional_and_min_amount_refused_before_sending(
    ex: CcxtExchange, fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)  # the price the check uses
    with pytest.raises(OrderRejected, match=r"below the minimum notional 5 USDT; not sent"):
        ex.create_order(buy("BTC/USDT", 0.00005, "ta-small"))  # ~3 USDT
    with pytest.raises(OrderRejected, match=r"below the minimum amount 1e-06 BTC"):
        ex.create_order(buy("BTC/USDT", 4e-7, "ta-dust"))
    assert fake.count("POST", ORDER) == 0
    assert "BTC/USDT: order ta-small rejected: notional" in caplog.text
    # the same refusal by the exchange itself (-1013), when it gets there: not retried
    fake.fail(ORDER, 400, -1013, "Filter failure: NOTIONAL", method="POST")
    with pytest.raises(OrderRejected, match="Filter failure: NOTIONAL"):
        ex.create_order(buy("BTC/USDT", 0.001, "ta-ok"))
    assert fake.count("POST", ORDER) == 1


def test_market_order_amount_is_rounded_and_sent_as_quantity(
    ex: CcxtExchange, fake: FakeBinance
) -> None:
    order = ex.create_order(buy("ETH/USDT", 0.123456789, "ta-eth", price=3000.0))
    sent = next(r.params for r in fake.requests if r.path == ORDER)
    assert sent["quantity"] == "0.12345" and "quoteOrderQty" not in sent
    assert sent["newClientOrderId"] == "ta-eth" and sent["type"] == "MARKET"
    assert (order.status, order.amount, order.filled, order.remaining) == (
        OrderStatus.CLOSED,
        0.12345,
        0.12345,
        0.0,
    )
    # the commission was taken in ETH (0.1 %): reported in quote
    assert order.average_price is not None
    assert order.fee_quote == pytest.approx(0.12345 * 0.001 * order.average_price, rel=1e-6)


def test_stall_then_fill_places_no_duplicate(
    ex: CcxtExchange, fake: FakeBinance, clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake.stall(ORDER, 2.0, method="POST")  # placed, but the reply misses the 300 ms timeout
    order = ex.create_order(buy("BTC/USDT", 0.01, "ta-stall"))
    assert order.client_order_id == "ta-stall" and order.status is OrderStatus.CLOSED
    assert order.filled == 0.01 and order.fee_quote > 0  # fees from its trades
    assert len(fake.orders_with_client_id("ta-stall")) == 1
    assert fake.count("POST", ORDER) == 1 and fake.count("GET", ORDER) == 1
    assert clock.sleeps == [6.0]  # recvWindow (5 s) + 1 s before the lookup
    assert "outcome unknown (RequestTimeout" in caplog.text
    assert "order ta-stall was placed (found after RequestTimeout" in caplog.text
    # a blind resend is what the test guards against: Binance (and the fake) accepts a
    # filled order's client id again and fills it again
    ex._client.api.create_order(
        "BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "ta-stall"}
    )
    assert len(fake.orders_with_client_id("ta-stall")) == 2


def test_request_still_in_flight_at_lookup_is_found(
    ex: CcxtExchange, fake: FakeBinance, clock: FakeTime
) -> None:
    release = threading.Event()
    fault = fake.stall(ORDER, 0, method="POST", before=True, release=release)

    def recv_window_passes(seconds: float) -> None:
        # the wait before the lookup is when the stalled request reaches the exchange
        release.set()
        assert fault.done.wait(10)

    clock.on_sleep = recv_window_passes
    order = ex.create_order(buy("BTC/USDT", 0.01, "ta-late"))
    assert order.client_order_id == "ta-late"
    assert len(fake.orders_with_client_id("ta-late")) == 1
    assert fake.count("POST", ORDER) == 1


def test_lost_order_is_sent_again_once_absent_and_attempts_are_bounded(
    ex: CcxtExchange, fake: FakeBinance, clock: FakeTime
) -> None:
    fake.fail(ORDER, 502, raw_body="<html>502 Bad Gateway</html>", method="POST")
    order = ex.create_order(buy("BTC/USDT", 0.01, "ta-lost"))
    assert order.status is OrderStatus.CLOSED
    assert fake.count("POST", ORDER) == 2 and fake.count("GET", ORDER) == 1
    assert len(fake.orders_with_client_id("ta-lost")) == 1
    fake.fail(ORDER, 503, raw_body="<html>503</html>", method="POST", times=10)
    with pytest.raises(TransientExchangeError, match="not placed after 3 sends"):
        ex.create_order(buy("BTC/USDT", 0.01, "ta-gone"))
    assert fake.count("POST", ORDER) == 2 + 3 and fake.count("GET", ORDER) == 1 + 3
    assert fake.orders_with_client_id("ta-gone") == []


def test_garbled_replies_are_errors_or_unknown_outcomes_never_crashes(
    ex: CcxtExchange, fake: FakeBinance
) -> None:
    fake.fail(KLINES, 200, raw_body="garbage{")
    with pytest.raises(ExchangeError, match="BTC/USDT: unreadable candles"):
        ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)
    fake.fail(ORDER, 200, raw_body="garbage{", method="POST")  # not placed, reply unreadable
    order = ex.create_order(buy("BTC/USDT", 0.01, "ta-garbled"))
    assert order.status is OrderStatus.CLOSED and order.exchange_order_id
    assert fake.count("POST", ORDER) == 2 and fake.count("GET", ORDER) == 1
    assert len(fake.orders_with_client_id("ta-garbled")) == 1


def test_partial_fills_tracked_by_filled_and_remaining(ex: CcxtExchange, fake: FakeBinance) -> None:
    fake.partial_fill_next(0.4)
    market = ex.create_order(buy("BTC/USDT", 0.01, "ta-part"))
    assert market.status is OrderStatus.CANCELED  # EXPIRED: the rest could not fill
    assert (market.filled, market.remaining) == (0.004, 0.006)
    last = float(fake.last_price("ETH/USDT"))
    fake.partial_fill_next(0.5)
    limit = ex.create_order(buy("ETH/USDT", 0.2, "ta-lim", kind="limit", price=last * 1.01))
    assert (limit.status, limit.filled, limit.remaining) == (OrderStatus.OPEN, 0.1, 0.1)
    assert [o.client_order_id for o in ex.fetch_open_orders("ETH/USDT")] == ["ta-lim"]
    assert ex.fetch_balances()["USDT"].used > 0
    fake.fill_open_orders()
    done = ex.fetch_order("ETH/USDT", "ta-lim")
    assert done is not None and (done.status, done.filled, done.remaining) == (
        OrderStatus.CLOSED,
        0.2,
        0.0,
    )
    assert done.fee_quote > 0
    resting = ex.create_order(buy("ETH/USDT", 0.01, "ta-rest", kind="limit", price=last * 0.9))
    assert (resting.status, resting.filled) == (OrderStatus.OPEN, 0.0)
    assert ex.cancel_order("ETH/USDT", "ta-rest").status is OrderStatus.CANCELED
    # cancelling again: Binance says "Unknown order sent."; the order is what it is
    assert ex.cancel_order("ETH/USDT", "ta-rest").status is OrderStatus.CANCELED
    assert ex.fetch_order("ETH/USDT", "never-sent") is None
    with pytest.raises(ExchangeError, match="no order with client order id 'never-sent'"):
        ex.cancel_order("ETH/USDT", "never-sent")


def test_insufficient_funds_rejected_with_symbol_and_not_retried(
    ex: CcxtExchange, fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(OrderRejected, match="BTC/USDT: order ta-big rejected: InsufficientFunds"):
        ex.create_order(buy("BTC/USDT", 1.0, "ta-big"))  # 60,000 USDT > 10,000
    assert fake.count("POST", ORDER) == 1
    assert "BTC/USDT: order ta-big rejected" in caplog.text


def test_sell_of_a_position_whose_fee_was_taken_in_base_sells_what_is_free(
    ex: CcxtExchange, fake: FakeBinance
) -> None:
    bought = ex.create_order(buy("ETH/USDT", 0.1, "ta-in"))
    sold = ex.create_order(
        OrderRequest(
            symbol="ETH/USDT", side=Side.SELL, amount=bought.filled, client_order_id="ta-out"
        )
    )
    assert sold.status is OrderStatus.CLOSED and sold.filled == pytest.approx(0.0999)
    assert "ETH" not in ex.fetch_balances()


# --- retries, rate limits, bans, clock skew ------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "body", "retry_after", "waits", "kind"),
    [
        (503, None, "<html>503 Service Unavailable</html>", None, [0.5], "ExchangeNotAvailable"),
        (502, None, "<html>502 Bad Gateway</html>", None, [0.5], "ExchangeNotAvailable"),
        (429, -1003, None, 3, [3.0], "DDoSProtection"),
        (400, -1003, None, None, [0.5], "RateLimitExceeded"),  # not a DDoSProtection subclass
        (500, -1001, None, None, [0.5], "OperationFailed"),  # "Internal error", Binance spot
    ],
)
def test_transient_read_errors_are_retried_with_backoff_and_logged(
    ex: CcxtExchange,
    fake: FakeBinance,
    clock: FakeTime,
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: int | None,
    body: str | None,
    retry_after: int | None,
    waits: list[float],
    kind: str,
) -> None:
    fake.fail(KLINES, status, code, "Too many requests.", raw_body=body, retry_after=retry_after)
    assert len(ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)) == 2
    assert clock.sleeps == waits
    assert fake.count("GET", KLINES) == 2
    assert f"BTC/USDT: fetch_ohlcv failed ({kind}: " in caplog.text
    assert f"retry 1/4 in {waits[0]:.1f} s" in caplog.text


def test_timeouts_are_retried_and_the_retries_are_bounded(
    ex: CcxtExchange, fake: FakeBinance, clock: FakeTime
) -> None:
    fake.stall(KLINES, 1.0)
    assert len(ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)) == 2
    assert clock.sleeps == [0.5]
    fake.fail("/api/v3/account", 503, raw_body="busy", times=99)
    with pytest.raises(TransientExchangeError, match="fetch_balances failed after 5 attempts"):
        ex.fetch_balances()
    assert clock.sleeps == [0.5, 0.5, 1.0, 2.0, 4.0]
    assert fake.count("GET", "/api/v3/account") == 5


def test_http_418_waits_the_stated_time_and_sends_nothing_during_a_long_ban(
    ex: CcxtExchange, fake: FakeBinance, clock: FakeTime
) -> None:
    ban = "Way too many requests; IP banned until 1795651260000."
    fake.fail("/api/v3/ticker/24hr", 418, -1003, ban, retry_after=7)
    assert "BTC/USDT" in ex.fetch_tickers()
    assert clock.sleeps == [7.0]
    fake.fail(KLINES, 418, -1003, ban, retry_after=3600)
    with pytest.raises(
        TransientExchangeError, match=r"IP banned by binance \(HTTP 418\) for 3600 s"
    ):
        ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)
    sent = len(fake.requests)
    with pytest.raises(TransientExchangeError, match="no request until then"):
        ex.fetch_balances()
    assert len(fake.requests) == sent  # a request during a ban would lengthen it
    clock.t += 3600
    assert len(ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)) == 2


def test_a_deadline_makes_a_retry_after_longer_than_it_fail_at_once(
    fake: FakeBinance, clock: FakeTime
) -> None:
    """Today a 30 s Retry-After is waited out inside the call; with a deadline (one
    setting, `RetryPolicy.deadline_s`) the call fails at once, saying why."""
    ex = connect(fake, clock, retry=RetryPolicy(deadline_s=5.0))
    ex.load_markets()
    fake.fail("/api/v3/ticker/24hr", 429, -1003, "Too many requests.", retry_after=30)
    with pytest.raises(
        TransientExchangeError, match=r"Retry-After 30 s, until [-\d]+ [:\d]+ UTC\)$"
    ):
        ex.fetch_tickers()
    assert clock.sleeps == [] and fake.count("GET", "/api/v3/ticker/24hr") == 1
    with pytest.raises(TransientExchangeError, match="30 s left, no request until then"):
        ex.fetch_balances()
    clock.t += 30
    assert "BTC/USDT" in ex.fetch_tickers()


def test_clock_skew_resyncs_the_time_then_retries_once(
    clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    # markets opened an hour ago, so that 30 s of skew does not put "now" before that
    with FakeBinance(anchor_ms=real_ms() - 3_600_000) as fake:
        _skew_resync(fake, connect(fake, clock), caplog)


def _skew_resync(fake: FakeBinance, ex: CcxtExchange, caplog: pytest.LogCaptureFixture) -> None:
    ex.load_markets()
    fake.time_offset_ms = -30_000  # the exchange's clock is 30 s behind ours
    assert "USDT" in ex.fetch_balances()
    assert [r.path for r in fake.requests[-3:]] == [
        "/api/v3/account",
        "/api/v3/time",
        "/api/v3/account",
    ]
    assert "refused for clock skew" in caplog.text and "resynced" in caplog.text
    order = ex.create_order(buy("BTC/USDT", 0.01, "ta-skew"))  # works on the new offset
    assert order.filled == 0.01
    fake.fail(
        "/api/v3/account",
        400,
        -1021,
        "Timestamp for this request is outside of the recvWindow.",
        times=2,
    )
    with pytest.raises(TransientExchangeError, match=r"even after a time resync.*NTP"):
        ex.fetch_balances()


def test_create_order_skew_is_resent_once_after_resync(ex: CcxtExchange, fake: FakeBinance) -> None:
    fake.time_offset_ms = 30_000  # our timestamps look 30 s old
    order = ex.create_order(buy("BTC/USDT", 0.01, "ta-late-clock"))
    assert order.status is OrderStatus.CLOSED
    assert fake.count("POST", ORDER) == 2 and len(fake.orders_with_client_id("ta-late-clock")) == 1


def test_the_weight_budget_lets_a_burst_through_then_waits_or_fails_at_the_deadline(
    fake: FakeBinance, clock: FakeTime
) -> None:
    """ccxt's own throttle spaces requests cost x rateLimit apart (500 candle requests: 10 s);
    the exchange counts weight per minute, so a burst may go at once while the minute's total
    stays under the budget."""
    gate = ServerGate(clock.monotonic, limit=5.1)  # ccxt units a minute (Binance: x5 weight)
    ex = connect(fake, clock, gate=gate, rate_limit=True)
    ex.load_markets()  # exchangeInfo 4 units, the server time 0.2
    ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)  # klines: 0.4 units each, no wait
    ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)
    assert clock.sleeps == [] and gate.used() == pytest.approx(5.0)
    clock.t += 30
    ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)  # 5.4 > 5.1: waits until exchangeInfo's 4 leave
    assert clock.sleeps == [30.0]
    hurried = connect(fake, clock, gate=gate, rate_limit=True, retry=RetryPolicy(deadline_s=5.0))
    hurried.load_markets()
    assert gate.reserve(gate.limit - gate.used()) == 0.0  # another role spends the rest
    with pytest.raises(TransientExchangeError, match=r"request weight budget spent .*deadline"):
        hurried.fetch_ohlcv("BTC/USDT", "1m", limit=2)
    assert clock.sleeps == [30.0]  # failed at once


def test_a_ban_stops_every_role_and_fails_at_once_with_the_time_it_ends(
    fake: FakeBinance, clock: FakeTime
) -> None:
    gate = ServerGate(clock.monotonic)
    policy = RetryPolicy(deadline_s=3.0, max_wait_s=3.0)
    market_data = connect(fake, clock, gate=gate, retry=policy)
    orders = connect(fake, clock, gate=gate, retry=policy)
    market_data.load_markets()
    orders.load_markets()
    until_ms = real_ms() + 5_000
    # Binance's own reply: no Retry-After header, the end in the text
    fake.fail(KLINES, 418, -1003, f"Way too much request weight used; IP banned until {until_ms}.")
    with pytest.raises(
        TransientExchangeError, match=r"IP banned by binance \(HTTP 418\) for 5 s, until"
    ) as err:
        market_data.fetch_ohlcv("BTC/USDT", "1m", limit=2)
    assert "1970" not in str(err.value)
    assert clock.sleeps == [] and fake.count("GET", KLINES) == 1  # not waited, not retried
    sent = len(fake.requests)
    with pytest.raises(TransientExchangeError, match=r"not sent: IP banned .* s left, no request"):
        orders.fetch_balances()  # another role's client: the ban is per IP
    assert len(fake.requests) == sent
    clock.t += 5  # the next candle, after the ban
    assert len(market_data.fetch_ohlcv("BTC/USDT", "1m", limit=2)) == 2


def test_a_request_that_stalls_is_cut_at_the_calls_deadline_not_its_http_timeout(
    fake: FakeBinance, clock: FakeTime
) -> None:
    """A 10 s HTTP timeout inside a 0.4 s deadline: the request is given 0.4 s, not 10."""
    ex = connect(fake, clock, timeout_ms=10_000, retry=RetryPolicy(deadline_s=0.4))
    ex.load_markets()
    fake.stall(KLINES, 3.0)  # answers after 3 s: in time for the 10 s timeout, not the deadline
    with pytest.raises(TransientExchangeError, match=r"deadline"):
        ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)
    assert fake.count("GET", KLINES) == 1


def test_concurrent_requests_each_get_a_connection_and_share_the_markets(
    fake: FakeBinance, clock: FakeTime
) -> None:
    import concurrent.futures

    ex = connect(fake, clock, connections=4, timeout_ms=10_000)
    ex.load_markets()
    release = threading.Event()
    fake.stall(KLINES, 0.0, times=4, before=True, release=release)  # held until released
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(ex.fetch_ohlcv, s, "1m", None, 2) for s in symbols]
        with fake._busy_cond:  # all four are in the fake at once
            all_in = fake._busy_cond.wait_for(lambda: fake._busy == 4, timeout=10)
        release.set()
        rows = [f.result() for f in futures]
    assert all_in
    assert all(len(r) == 2 for r in rows)
    assert fake.count("GET", "/api/v3/exchangeInfo") == 1  # the other instances share them


# --- keys and authentication ----------------------------------------------------------------


def test_bad_keys_stop_trading_with_what_to_check_and_never_leak(
    fake: FakeBinance, clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # ccxt's own request/response lines included
    wrong = "wrong-secret-5555555555"
    ex = connect(fake, clock, secret=wrong)
    ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)  # public data still flows
    with pytest.raises(AuthenticationFailed) as err:
        ex.fetch_balances()
    message = str(err.value)
    assert "TRADEACTORS_API_KEY and TRADEACTORS_API_SECRET" in message
    assert "https://testnet.binance.vision" in message and "clock" in message
    posts = fake.count("POST", ORDER)
    with pytest.raises(AuthenticationFailed):
        ex.create_order(buy("BTC/USDT", 0.01, "ta-auth"))
    assert fake.count("POST", ORDER) == posts  # trading stopped: nothing sent
    assert "X-MBX-APIKEY" in caplog.text  # ccxt's debug lines were logged ...
    for secret in (API_KEY, wrong):  # ... with the key and the secret masked
        assert secret not in caplog.text and secret not in message
        assert secret not in repr(ex) and secret not in repr(ex._client.credentials)
    assert "signature=***" in caplog.text


def test_missing_keys_name_the_variables() -> None:
    with pytest.raises(MissingCredentials) as err:
        Credentials.from_env({API_KEY_ENV: "k"}, "demo")
    assert str(err.value) == (
        "exchange mode 'demo' needs API keys: set TRADEACTORS_API_SECRET in the environment "
        "(keys from https://demo.binance.com, API Management (demo trading keys)); keys are "
        "never read from settings files"
    )
    creds = Credentials.from_env({API_KEY_ENV: "kkkkk", API_SECRET_ENV: "sssss"})
    assert "kkkkk" not in repr(creds) and "sssss" not in str(creds)


def test_supervisor_builds_ccxt_exchange_and_refuses_unconfirmed_live(fake: FakeBinance) -> None:
    from actors.clock import RealClock
    from app.builders import build_ccxt_exchange

    env = {API_KEY_ENV: API_KEY, API_SECRET_ENV: API_SECRET}
    settings = msgspec.convert({"exchange": {"kind": "ccxt", "base_url": fake.url}}, Settings)
    clock = RealClock()
    try:
        roles = build_ccxt_exchange(settings, clock, env)
        assert len(roles.distinct()) == 3  # one client per role
        assert {client.name for client in roles} == {"binance-sandbox"}
        assert len({id(client.gate) for client in roles}) == 1  # one ban, one weight budget
        assert roles.orders.gate.limit == 600  # half of Binance's 1200 units (6000 weight)
        assert "BTC/USDT" in roles.market_data.load_markets()
        with pytest.raises(SettingsError, match="needs API keys: set TRADEACTORS_API_KEY"):
            build_ccxt_exchange(settings, clock, {})
        live = msgspec.convert({"exchange": {"kind": "ccxt", "mode": "live"}}, Settings)
        with pytest.raises(SettingsError, match='live_confirm to "I understand this trades'):
            build_ccxt_exchange(live, clock, env)
    finally:
        clock.stop()


def test_ccxt_settings_are_checked_when_loaded(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("exchange: {kind: ccxt, mode: testnet}\n")
    with pytest.raises(SettingsError, match=r"at \$\.exchange\.mode"):
        load_settings(path)
    path.write_text("exchange: {kind: ccxt, recv_window_ms: 90000}\n")
    with pytest.raises(SettingsError, match=r"<= 60000 - at \$\.exchange\.recv_window_ms"):
        load_settings(path)
    path.write_text("exchange: {kind: ccxt, mode: demo, base_url: 'http://127.0.0.1:9000'}\n")
    ex = load_settings(path).exchange
    assert (ex.kind, ex.id, ex.mode, ex.base_url, ex.quote) == (
        "ccxt",
        "binance",
        "demo",
        "http://127.0.0.1:9000",
        "USDT",
    )


def test_bot_without_keys_exits_2_before_any_actor_runs(tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    # the admin port is another check before any actor: a bot running beside the tests holds
    # the default one
    settings.write_text(
        f"data_dir: {tmp_path / 'var'}\nexchange: {{kind: ccxt, mode: demo}}\nadmin: {{port: 0}}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in (API_KEY_ENV, API_SECRET_ENV)}
    done = subprocess.run(
        [sys.executable, "supervisor.py", "--settings", str(settings)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "needs API keys" in line]
    assert errors == [
        "exchange: exchange mode 'demo' needs API keys: set TRADEACTORS_API_KEY and "
        "TRADEACTORS_API_SECRET in the environment (keys from https://demo.binance.com, "
        "API Management (demo trading keys)); keys are never read from settings files"
    ]
    assert "Main loop started" not in done.stderr and "Traceback" not in done.stderr
