"""`exchange.kind: paper` + `market: live`: the exchange's public prices (the loopback fake
Binance through ccxt), fills on the paper exchange, state kept across restarts, no keys."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest

from actors.clock import VirtualClock
from app.builders import build_exchange
from config.settings import Settings
from exchange.live import LivePaperExchange
from exchange.types import ExchangeError, OrderRequest, OrderStatus, Side, TransientExchangeError
from tests.fake_binance import FakeBinance

MIN = 60_000
SIGNED = ("/api/v3/order", "/api/v3/account", "/api/v3/openOrders", "/api/v3/myTrades")


def live_settings(url: str, data_dir: Path) -> Settings:
    return msgspec.convert(
        {
            "data_dir": str(data_dir),
            "exchange": {"kind": "paper", "market": "live", "id": "binance", "base_url": url},
        },
        Settings,
    )


def test_paper_fills_on_live_public_prices_and_survive_a_restart(tmp_path: Path) -> None:
    clock = VirtualClock(start=time.time())
    with FakeBinance(market_ms=lambda: int(clock.now() * 1000)) as fake:
        settings = live_settings(fake.url, tmp_path)
        exchange = build_exchange(settings, clock).orders
        assert isinstance(exchange, LivePaperExchange) and exchange.name == "paper-binance"
        markets = exchange.load_markets()
        step, _ = fake._filters["BTC/USDT"]
        assert markets["BTC/USDT"].amount_step == float(step)  # the exchange's own rules
        candles = exchange.fetch_ohlcv("BTC/USDT", "1m", limit=3)
        now = int(clock.now() * 1000)
        closed = now // MIN * MIN
        expected = fake.market.ohlcv("BTC/USDT", "1m", closed - 3 * MIN, closed)
        assert np.allclose(candles, expected, rtol=1e-9)  # closed ones; 8 decimals on the wire
        order = exchange.create_order(OrderRequest("BTC/USDT", Side.BUY, 0.01, "ta-live-1"))
        assert order.status is OrderStatus.CLOSED and order.filled == 0.01
        assert order.average_price == pytest.approx(candles[-1][4] * 1.0005)  # last close + 5 bps
        assert order.fee_quote == pytest.approx(0.01 * order.average_price * 0.001)
        usdt = exchange.fetch_balances()["USDT"].free
        assert usdt == pytest.approx(10_000 - 0.01 * order.average_price * 1.001)
        exchange.close()

        clock.advance(600)  # a restart ten minutes later: prices moved, the paper state did not
        again = build_exchange(settings, clock).orders
        assert again.fetch_order("BTC/USDT", "ta-live-1") == order
        assert again.create_order(OrderRequest("BTC/USDT", Side.BUY, 0.01, "ta-live-1")) == order
        assert again.fetch_balances()["BTC"].free == 0.01
        assert again.fetch_balances()["USDT"].free == usdt
        again.close()
        signed = [r.path for r in fake.requests if r.path in SIGNED]
    assert signed == []  # public endpoints only: no keys, nothing reached the exchange's book
    assert fake.orders == []


def test_an_exchange_down_at_start_is_a_warning_and_orders_wait(
    tmp_path: Path, caplog, monkeypatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)  # the retries' backoff, not waited here
    clock = VirtualClock(start=time.time())
    with FakeBinance() as fake:
        url = fake.url
    settings = live_settings(url, tmp_path)
    with caplog.at_level(logging.WARNING, logger="tradeactors"):
        exchange = build_exchange(settings, clock).orders  # the fake is gone: nothing answers
    assert "binance does not answer at start" in caplog.text
    with pytest.raises(TransientExchangeError):
        exchange.fetch_balances()  # the trader retries at its next candle
    exchange.close()
    backoff = [w for w in waits if w >= 0.5]  # (the rest: ccxt's request pacing)
    assert backoff == [0.5, 1.0, 2.0, 4.0] * 2  # retried with backoff, at start and then


def test_a_corrupt_paper_state_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "state.json").write_text("{not json")
    with FakeBinance() as fake, pytest.raises(ExchangeError, match="corrupt paper exchange state"):
        build_exchange(live_settings(fake.url, tmp_path), VirtualClock(start=time.time()))
