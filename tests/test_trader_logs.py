"""Small truths in the trader's log: a partial fill says partial, counts agree with their nouns."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from actors.base import Runtime, Topic
from actors.messages import OrderPlaced
from app.builders import build_paper_exchange
from config.settings import TradingSettings
from core.text import plural
from exchange.synthetic import SyntheticMarket
from exchange.types import Order, OrderStatus, Side
from policy.trade_lines import closed_all_detail, partial_fill_note
from storage.ledger import MemoryLedger
from tests.harness import (
    HOLD,
    T0,
    Recorder,
    make_tradable,
    new_clock,
    published_model,
    settle,
    start_trader,
)


def order(filled: float, status: OrderStatus) -> Order:
    return Order(
        symbol="BTC/USDT",
        side=Side.BUY,
        client_order_id="ta1",
        exchange_order_id="1",
        status=status,
        amount=0.002,
        filled=filled,
        remaining=0.002 - filled,
        average_price=60_000.0,
        fee_quote=0.06,
        created_ms=0,
    )


def test_a_partial_fill_is_named_with_what_becomes_of_the_rest() -> None:
    assert partial_fill_note(order(0.002, OrderStatus.CLOSED)) is None
    assert partial_fill_note(order(0.001, OrderStatus.CANCELED)) == (
        "BTC/USDT: order ta1 filled only 0.001 of 0.002 (partial fill, 50%); the rest will not "
        "fill (expired or canceled)"
    )
    assert partial_fill_note(order(0.0005, OrderStatus.OPEN)).endswith(  # type: ignore[union-attr]
        "(partial fill, 25%); the rest stays open on the exchange"
    )


def test_close_all_counts_the_positions_closed() -> None:
    assert closed_all_detail([]) == "closed 0 positions"
    assert closed_all_detail([True, False, True]) == "closed 2 positions"
    assert closed_all_detail([True]) == "closed 1 position"


def test_counts_agree_with_their_nouns() -> None:
    assert [plural(n, "open position") for n in (0, 1, 2)] == [
        "0 open positions",
        "1 open position",
        "2 open positions",
    ]
    assert plural(1, "mismatch", "mismatches") == "1 mismatch"
    assert plural(3, "mismatch", "mismatches") == "3 mismatches"


def test_a_partial_market_fill_through_ccxt_says_partial_in_the_trader_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The loopback fake Binance fills half a market order and expires the rest."""
    from exchange.ccxt_client import CcxtConfig
    from exchange.ccxt_exchange import CcxtExchange
    from exchange.credentials import Credentials
    from tests.fake_binance import API_KEY, API_SECRET, FakeBinance
    from tests.fake_time import FakeTime

    caplog.set_level(logging.INFO)
    clock = new_clock(T0 + 3630)
    waits = FakeTime()
    with FakeBinance(anchor_ms=int(T0 * 1000), market_ms=lambda: int(clock.now() * 1000)) as fake:
        orders = CcxtExchange(
            CcxtConfig(base_url=fake.url, rate_limit=False),
            Credentials(API_KEY, API_SECRET),
            now_ms=lambda: int(clock.now() * 1000),
            sleep=waits.sleep,
            monotonic=waits.monotonic,
        )
        runtime, events = Runtime(), Recorder()
        trader = start_trader(
            clock=clock,
            exchange=orders,
            market_exchange=build_paper_exchange(SyntheticMarket(anchor_ms=int(T0 * 1000)), clock),
            ledger=MemoryLedger(),
            trading=TradingSettings(**HOLD),
            store=Recorder(),
            coverage=Recorder(),
            events=Topic({"probe": events}),
            runtime=runtime,
        )
        fake.partial_fill_next(0.5)
        model = published_model(tmp_path, "BTC/USDT")
        make_tradable(trader, {"BTC/USDT": model})
        settle(runtime)
        orders.close()
    [placed] = events.of(OrderPlaced)
    assert "BTC/USDT: BUY " in caplog.text
    assert f"BTC/USDT: order {placed.client_order_id} filled only " in caplog.text
    assert "(partial fill, 50%); the rest will not fill (expired or canceled)" in caplog.text
