"""The trader's book-keeping, without an actor: rows, orders and balances in, numbers out."""

from __future__ import annotations

import math

import pytest

from exchange.types import Balance, Order, OrderStatus, Side
from policy.lifecycle import SymbolState
from policy.portfolio import HeartbeatCounts, Portfolio
from policy.risk import Intent, Position, decide
from storage.ledger import FillRow, OrderRow, OrderState, PositionRow
from tests.test_policy import TURNOVER
from tests.test_trade_results import fill as trade_fill

BTC, ETH = "BTC/USDT", "ETH/USDT"


def fill(side: str, amount: float, price: float, at: float, symbol: str = BTC) -> FillRow:
    return trade_fill(side, amount, price, 0.1, at, symbol)  # a fee of 0.1 USDT each


def order_row(
    side: Side, candle_ms: int, filled: float, created_at: float, symbol: str = BTC
) -> OrderRow:
    return OrderRow(
        client_order_id=f"{side}{candle_ms}",
        symbol=symbol,
        side=side,
        intent=Intent.ENTRY if side is Side.BUY else Intent.EXIT,
        amount=1.0,
        candle_ms=candle_ms,
        state=OrderState.FILLED if filled else OrderState.CANCELED,
        filled=filled,
        created_at=created_at,
        updated_at=created_at,
    )


def order(side: Side, filled: float, symbol: str = BTC) -> Order:
    return Order(
        symbol=symbol,
        side=side,
        client_order_id=f"o-{side}",
        exchange_order_id="1",
        status=OrderStatus.CLOSED if filled else OrderStatus.CANCELED,
        amount=1.0,
        filled=filled,
        remaining=1.0 - filled,
        average_price=100.0,
        fee_quote=0.1,
        created_ms=0,
    )


def held(amount: float = 1.0, entry: float = 100.0, symbol: str = BTC) -> Position:
    return Position(symbol=symbol, amount=amount, entry_price=entry, opened_at=0.0)


def row(position: Position) -> PositionRow:
    return PositionRow(
        symbol=position.symbol,
        amount=position.amount,
        entry_price=position.entry_price,
        opened_at=position.opened_at,
    )


def usdt(total: float) -> dict[str, Balance]:
    return {"USDT": Balance(asset="USDT", free=total, used=0.0)}


def test_load_takes_positions_results_decided_candles_and_exits_from_the_rows() -> None:
    portfolio = Portfolio.load(
        "USDT",
        fills=[fill("sell", 1.0, 110.0, 20.0), fill("buy", 1.0, 100.0, 10.0)],  # out of order
        orders=[
            order_row(Side.BUY, 60_000, 1.0, created_at=10.0),
            order_row(Side.SELL, 120_000, 1.0, created_at=20.0),
            order_row(Side.SELL, 180_000, 0.0, created_at=30.0),  # nothing sold: no exit
            order_row(Side.BUY, 60_000, 1.0, created_at=40.0, symbol=ETH),
        ],
        positions={ETH: row(held(symbol=ETH))},
    )
    assert portfolio.positions == {ETH: held(symbol=ETH)}
    assert portfolio.last_exit_at == {BTC: 20.0}
    assert portfolio.last_candle_ms == {BTC: 180_000, ETH: 60_000}
    stats = portfolio.book.stats()
    assert stats.round_trips == 1 and stats.realized_pnl == pytest.approx(110 - 0.1 - 100.1)
    assert portfolio.orders_placed == 0 and portfolio.balances is None


def test_the_cooldown_survives_a_restart_through_the_rows_loaded() -> None:
    assert TURNOVER.cooldown_bars == 10 and TURNOVER.bar_s == 60.0
    sold_at = 6_000.0
    portfolio = Portfolio.load(
        "USDT",
        fills=[],
        orders=[order_row(Side.SELL, 5_940_000, 1.0, created_at=sold_at)],
        positions={},
    )

    def entry(now: float) -> bool:
        return (
            decide(
                symbol=BTC,
                prob_up=0.9,
                price=100.0,
                position=None,
                open_positions=0,
                paused=False,
                limits=TURNOVER,
                now=now,
                last_exit_at=portfolio.last_exit_at.get(BTC),
            )
            is not None
        )

    assert not entry(sold_at + 9 * 60)  # 9 candles after the sale before the restart
    assert entry(sold_at + 10 * 60)


def test_a_candle_is_decided_once_and_its_price_kept_either_way() -> None:
    portfolio = Portfolio("USDT")
    assert portfolio.new_candle(BTC, 60_000, 100.0)
    assert not portfolio.new_candle(BTC, 60_000, 101.0)  # the same candle again
    assert not portfolio.new_candle(BTC, 0, 99.0)  # an older one
    assert portfolio.last_price == {BTC: 99.0}
    assert portfolio.new_candle(BTC, 120_000, 102.0)
    assert portfolio.last_candle_ms == {BTC: 120_000}


def test_an_order_moves_the_position_the_book_and_the_exit_time() -> None:
    portfolio = Portfolio("USDT")
    bought = portfolio.apply_order(order(Side.BUY, 1.0), held(), fill("buy", 1.0, 100.0, 10.0), 10)
    assert bought is None and portfolio.positions == {BTC: held()}
    assert portfolio.last_exit_at == {}
    unfilled = portfolio.apply_order(order(Side.SELL, 0.0), held(), None, now=15.0)
    assert unfilled is None and portfolio.last_exit_at == {}  # nothing sold: no cooldown
    trip = portfolio.apply_order(order(Side.SELL, 1.0), None, fill("sell", 1.0, 110.0, 20.0), 20)
    assert trip is not None and trip.net_pnl == pytest.approx(110 - 0.1 - 100.1)
    assert portfolio.positions == {} and portfolio.last_exit_at == {BTC: 20.0}
    assert portfolio.orders_placed == 3


def test_a_reconciliation_adds_its_fills_and_replaces_the_positions() -> None:
    portfolio = Portfolio("USDT")
    portfolio.set_positions({BTC: row(held()), ETH: row(held(symbol=ETH))})
    portfolio.apply_reconciled(
        [
            fill("buy", 2.0, 10.0, 5.0, symbol=ETH),
            fill("sell", 1.0, 110.0, 30.0),  # its order was decided at 25
            fill("sell", 2.0, 11.0, 40.0, symbol=ETH),  # no order row: from its fill
        ],
        {BTC: row(held(0.5))},  # a reconciliation may cut a position
        {"sell30.0": 25.0},
    )
    assert portfolio.positions == {BTC: held(0.5)}
    assert portfolio.last_exit_at == {BTC: 25.0, ETH: 40.0}
    assert portfolio.book.stats().round_trips == 1  # ETH's; BTC's buy is not in this book
    assert portfolio.book.stats().fees_quote == pytest.approx(0.3)


def test_an_earlier_exit_found_later_does_not_move_the_cooldown_back() -> None:
    portfolio = Portfolio("USDT")
    portfolio.apply_order(order(Side.SELL, 1.0), None, None, now=50.0)
    portfolio.apply_reconciled([fill("sell", 1.0, 110.0, 30.0)], {}, {})
    assert portfolio.last_exit_at == {BTC: 50.0}


def test_equity_is_nan_before_any_balances_then_cash_plus_positions_at_the_last_price() -> None:
    portfolio = Portfolio("USDT")
    portfolio.set_positions({BTC: row(held(2.0, entry=100.0))})
    assert math.isnan(portfolio.equity())
    portfolio.apply_balances(portfolio.next_balances_seq(), usdt(1_000.0))
    assert portfolio.equity() == 1_000.0 + 2 * 100.0  # no candle yet: at the entry price
    portfolio.new_candle(BTC, 60_000, 110.0)
    assert portfolio.equity() == 1_000.0 + 2 * 110.0
    assert portfolio.equity(usdt(500.0)) == 500.0 + 2 * 110.0  # given balances win
    assert portfolio.equity({}) == 2 * 110.0  # no quote balance: no cash


def test_a_stale_or_failed_balances_reply_is_ignored() -> None:
    portfolio = Portfolio("USDT")
    first, second = portfolio.next_balances_seq(), portfolio.next_balances_seq()
    assert (first, second) == (1, 2)
    portfolio.apply_balances(second, usdt(200.0))
    portfolio.apply_balances(first, usdt(100.0))  # answered after the newer request
    assert portfolio.equity() == 200.0
    portfolio.apply_balances(portfolio.next_balances_seq(), None)  # failed
    assert portfolio.equity() == 200.0 and portfolio.balances_seq_seen == 2


def test_unrealized_pnl_values_open_trips_at_the_last_price() -> None:
    portfolio = Portfolio("USDT")
    portfolio.apply_order(order(Side.BUY, 1.0), held(), fill("buy", 1.0, 100.0, 10.0), 10)
    assert portfolio.unrealized() == 0.0  # no price yet: at its cost
    portfolio.new_candle(BTC, 60_000, 105.0)
    assert portfolio.unrealized() == pytest.approx(105.0 - 100.1)


def test_the_summary_line_says_equity_pnl_positions_and_symbols() -> None:
    portfolio = Portfolio("USDT")
    states = [SymbolState.ACTIVE, SymbolState.TRAINING, SymbolState.NO_EDGE]
    assert portfolio.summary(states, paused=True) == (
        "Summary: equity unknown, realized PnL +0.00 USDT, unrealized PnL +0.00 USDT, "
        "0 open positions, trading paused; symbols: 1 active, 1 training, 1 blocked (1 no edge)"
    )
    portfolio.apply_order(order(Side.BUY, 1.0), held(), fill("buy", 1.0, 100.0, 10.0), 10)
    portfolio.new_candle(BTC, 60_000, 110.0)
    portfolio.apply_balances(portfolio.next_balances_seq(), usdt(9_900.0))
    assert portfolio.summary(states, paused=False) == (
        "Summary: equity 10,010.00 USDT, realized PnL +0.00 USDT, unrealized PnL +9.90 USDT, "
        "1 open position; symbols: 1 active, 1 training, 1 blocked (1 no edge)"
    )


def test_heartbeat_counts_active_blocked_and_open_positions_once_through_the_states() -> None:
    portfolio = Portfolio("USDT")
    portfolio.set_positions({BTC: row(held())})
    states = [
        SymbolState.ACTIVE,
        SymbolState.ACTIVE,
        SymbolState.TRAINING,  # not trading yet: blocked, to the heartbeat
        SymbolState.NO_EDGE,
        SymbolState.RETIRED,  # out of the universe: neither
    ]
    assert portfolio.heartbeat(iter(states)) == HeartbeatCounts(
        active=2, blocked=2, open_positions=1
    )


def test_status_has_positions_by_symbol_results_equity_and_orders() -> None:
    portfolio = Portfolio("USDT")
    empty = portfolio.status()
    assert empty.positions == () and math.isnan(empty.equity) and empty.win_rate is None
    portfolio.apply_order(order(Side.BUY, 1.0, ETH), held(symbol=ETH), None, 5)
    portfolio.apply_order(order(Side.BUY, 1.0), held(), fill("buy", 1.0, 100.0, 10.0), 10)
    portfolio.apply_order(order(Side.SELL, 1.0), None, fill("sell", 1.0, 110.0, 20.0), 20)
    portfolio.apply_order(order(Side.BUY, 1.0), held(), fill("buy", 1.0, 100.0, 30.0), 30)
    portfolio.apply_balances(portfolio.next_balances_seq(), usdt(50.0))
    status = portfolio.status()
    assert status.positions == (held(), held(symbol=ETH))
    assert status.orders_placed == 4 and status.round_trips == 1 and status.wins == 1
    assert status.win_rate == 1.0 and status.fees_quote == pytest.approx(0.3)
    assert status.realized_pnl == pytest.approx(9.8)
    assert status.equity == 50.0 + 100.0 + 100.0
