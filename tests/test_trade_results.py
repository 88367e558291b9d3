"""Trade results: round trips after every fee, by hand, then in the trader's log and status."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from actors.messages import (
    GetTraderStatus,
    ModelsUpdated,
    OrderPlaced,
    SymbolStates,
    TraderStatus,
)
from exchange.paper import PaperExchange
from exchange.synthetic import SyntheticMarket
from policy.lifecycle import SymbolRecord, SymbolState
from policy.results import TradeBook, format_round_trip
from policy.risk import Intent
from storage.ledger import FillRow, MemoryLedger
from tests.harness import EVERY_CANDLE, HOLD, T0, new_clock, published_model, settle
from tests.test_actors_isolated import TraderRig


def fill(
    side: str, amount: float, price: float, fee: float, at: float, symbol: str = "X/USDT"
) -> FillRow:
    return FillRow(
        client_order_id=f"{side}{at}",
        symbol=symbol,
        side=side,
        amount=amount,
        price=price,
        fee_quote=fee,
        at=at,
    )


def test_a_round_trip_counts_both_fees() -> None:
    book = TradeBook()
    assert book.add(fill("buy", 1.0, 100.0, 0.10, 1.0)) is None
    trip = book.add(fill("sell", 1.0, 110.0, 0.11, 2.0))
    assert trip is not None
    # 110 - 0.11 - (100 + 0.10) = 9.79, of a cost of 100.10
    assert trip.net_pnl == pytest.approx(9.79)
    assert trip.cost_quote == pytest.approx(100.10)
    assert trip.return_pct == pytest.approx(100 * 9.79 / 100.10)
    assert trip.fees_quote == pytest.approx(0.21)
    assert format_round_trip(trip, "USDT") == "round trip +9.79 USDT (+9.78 %)"


def test_partial_sales_a_loss_an_open_position_and_the_win_rate() -> None:
    book = TradeBook.of(
        [
            # X: two buys, sold in two halves, the second at a loss
            fill("buy", 1.0, 100.0, 0.1, 1.0),
            fill("buy", 1.0, 102.0, 0.1, 2.0),  # cost 202.2 for 2 units
            fill("sell", 1.0, 104.0, 0.2, 3.0),  # +104 - 0.2 - 101.1 = +2.7
            fill("sell", 1.0, 99.0, 0.1, 4.0),  # +99 - 0.1 - 101.1 = -2.2: trip +0.5
            # Y: a losing trip, then an entry still open
            fill("buy", 2.0, 10.0, 0.02, 5.0, symbol="Y/USDT"),
            fill("sell", 2.0, 9.0, 0.018, 6.0, symbol="Y/USDT"),  # 18 - 0.018 - 20.02 = -2.038
            fill("buy", 1.0, 9.5, 0.0095, 7.0, symbol="Y/USDT"),
        ]
    )
    x, y = book.trips
    assert (x.net_pnl, x.cost_quote, x.won) == (pytest.approx(0.5), pytest.approx(202.2), True)
    assert (y.net_pnl, y.won) == (pytest.approx(-2.038), False)
    totals = book.stats()
    assert totals.round_trips == 2 and totals.wins == 1 and totals.win_rate == 0.5
    assert totals.realized_pnl == pytest.approx(0.5 - 2.038)
    assert totals.fees_quote == pytest.approx(0.5 + 0.038 + 0.0095)
    only_y = book.stats("Y/USDT")
    assert only_y.round_trips == 1 and only_y.fees_quote == pytest.approx(0.0475)
    assert "Y/USDT" in book.open  # the last buy


def test_the_coins_a_fee_took_close_the_trip_at_their_cost() -> None:
    book = TradeBook()
    book.add(fill("buy", 1.0, 100.0, 0.0, 1.0))
    trip = book.add(fill("sell", 0.999, 100.0, 0.0, 2.0))  # 0.1 % kept by the exchange as fee
    assert trip is not None and trip.net_pnl == pytest.approx(-0.1)
    assert book.stats().realized_pnl == pytest.approx(-0.1) and not book.open


def test_a_sale_without_a_recorded_buy_is_no_round_trip() -> None:
    book = TradeBook.of([fill("sell", 1.0, 100.0, 0.1, 1.0)])
    assert book.trips == [] and book.stats().fees_quote == pytest.approx(0.1)


# --- in the trader -----------------------------------------------------------------------


def start_trader(clock: Any, ledger: MemoryLedger, **trading: Any) -> TraderRig:
    exchange = PaperExchange(
        SyntheticMarket(anchor_ms=int(T0 * 1000)), now_ms=lambda: int(clock.now() * 1000)
    )
    return TraderRig(exchange, clock, ledger, **trading)


def states(state: SymbolState) -> SymbolStates:
    return SymbolStates(records=(SymbolRecord(symbol="BTC/USDT", state=state),))


def test_sell_lines_and_status_carry_the_round_trips(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock, ledger = new_clock(), MemoryLedger()
    model = published_model(tmp_path, "BTC/USDT")
    # every signal enters when flat and exits when held: a round trip every two candles
    rig = start_trader(clock, ledger, **EVERY_CANDLE)
    trader, events = rig.ref, rig.events
    trader.tell(ModelsUpdated(version=model.version, symbols=(), models={"BTC/USDT": model}))
    trader.tell(states(SymbolState.ACTIVE))
    for _ in range(7):
        clock.advance(60)
        settle(rig.runtime)
    fills = ledger.fills()
    trips = len(fills) // 2
    assert trips >= 3 and [f.side for f in fills] == ["buy", "sell"] * trips
    expected = []
    for buy, sell in zip(fills[::2], fills[1::2], strict=True):
        cost = buy.amount * buy.price + buy.fee_quote
        net = sell.amount * sell.price - sell.fee_quote - cost
        expected.append((net, 100 * net / cost))
    sells = [o for o in events.of(OrderPlaced) if o.side == "sell"]
    assert [(o.net_pnl, o.return_pct) for o in sells] == [
        (pytest.approx(n), pytest.approx(p)) for n, p in expected
    ]
    lines = [r.getMessage() for r in caplog.records if ": SELL " in r.getMessage()]
    assert len(lines) == trips
    for line, (net, pct) in zip(lines, expected, strict=True):
        assert re.search(r", fee \d+\.\d{4} USDT, round trip [+-]\d+\.\d\d USDT \([+-]", line)
        assert line.endswith(f", round trip {net:+.2f} USDT ({pct:+.2f} %)")
    assert not any("round trip" in r.getMessage() for r in caplog.records if ": BUY " in r.msg)
    status: TraderStatus = trader.ask(GetTraderStatus())
    assert status.round_trips == trips
    assert status.wins == sum(net > 0 for net, _ in expected)
    assert status.win_rate == pytest.approx(status.wins / trips)
    assert status.realized_pnl == pytest.approx(sum(net for net, _ in expected))
    assert status.fees_quote == pytest.approx(sum(f.fee_quote for f in fills))
    # a restarted trader finds the same results in the ledger
    trader.stop()
    again = start_trader(clock, ledger).ref
    assert again.ask(GetTraderStatus()).realized_pnl == pytest.approx(status.realized_pnl)


def test_a_position_whose_symbol_lost_its_edge_still_has_its_stop_loss(tmp_path: Path) -> None:
    clock, ledger = new_clock(), MemoryLedger()
    model = published_model(tmp_path, "BTC/USDT")
    # a stop 0.001 % below the entry: the first candle that closes below it sells
    rig = start_trader(clock, ledger, **HOLD, stop_loss_pct=0.001)
    trader, events = rig.ref, rig.events
    trader.tell(ModelsUpdated(version=model.version, symbols=(), models={"BTC/USDT": model}))
    trader.tell(states(SymbolState.ACTIVE))
    settle(rig.runtime)
    (entry,) = events.of(OrderPlaced)
    assert entry.intent is Intent.ENTRY
    trader.tell(states(SymbolState.NO_EDGE))  # the model stays loaded; the symbol may not trade
    for _ in range(30):
        clock.advance(60)
        settle(rig.runtime)
    orders = events.of(OrderPlaced)
    assert [o.intent for o in orders] == [Intent.ENTRY, Intent.STOP_LOSS]
    assert orders[1].net_pnl is not None and orders[1].net_pnl < 0
