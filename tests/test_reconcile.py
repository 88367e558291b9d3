"""Reconciliation after a restart: the decisions (pure), and whole passes on a paper exchange."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exchange.paper import PaperExchange
from exchange.synthetic import SyntheticMarket
from exchange.types import ExchangeError, Order, OrderRequest, OrderStatus, Side
from execution.reconcile import reconcile, record_order
from policy.reconcile import apply_fill, check_position, resolve_order
from policy.results import TradeBook
from policy.risk import Intent, Position, client_order_id
from storage.db import Database, SqliteLedger
from storage.ledger import OrderRow, OrderState, PositionRow
from tests.harness import T0, Stalling
from tests.test_storage_db import order

CANDLE = int(T0 * 1000) - 60_000


def row(coid: str, state: OrderState = OrderState.SENT, **fields: Any) -> OrderRow:
    return order(coid, state=state, **{"candle_ms": CANDLE, **fields})


def exchange_order(coid: str, status: OrderStatus = OrderStatus.CLOSED, **fields: Any) -> Order:
    base: dict[str, Any] = {
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "client_order_id": coid,
        "exchange_order_id": "paper-1",
        "status": status,
        "amount": 0.002,
        "filled": 0.002 if status is OrderStatus.CLOSED else 0.0,
        "remaining": 0.0,
        "average_price": 60_000.0,
        "fee_quote": 0.12,
        "created_ms": CANDLE,
    }
    return Order(**{**base, **fields})


# --- deciding (pure) -------------------------------------------------------------------


@pytest.mark.parametrize("state", [OrderState.NEW, OrderState.SENT])
def test_an_unknown_order_the_exchange_never_saw_was_never_sent(state: OrderState) -> None:
    resolution = resolve_order(row("ta1", state), None)
    assert resolution.outcome == "never sent" and not resolution.mismatch
    assert resolution.note == (
        f"BTC/USDT: order ta1 (entry) was {state} at the restart and the exchange never saw "
        "it: marked REJECTED (never sent)"
    )


def test_an_unknown_order_the_exchange_filled_is_recorded_filled() -> None:
    resolution = resolve_order(row("ta1"), exchange_order("ta1"))
    assert resolution.outcome == "filled"
    assert resolution.note == (
        "BTC/USDT: order ta1 (entry) was SENT at the restart; the exchange has it FILLED "
        "(0.002 of 0.002 at 60000): recorded"
    )


def test_resting_orders_are_refreshed_and_a_vanished_one_is_a_mismatch() -> None:
    resting = row("ta1", OrderState.OPEN)
    assert resolve_order(resting, exchange_order("ta1", OrderStatus.OPEN)).outcome == "unchanged"
    half = exchange_order("ta1", OrderStatus.OPEN, filled=0.001)
    assert resolve_order(resting, half).outcome == "partial"
    vanished = resolve_order(resting, None)
    assert vanished.outcome == "vanished" and vanished.mismatch


def test_a_client_id_used_by_another_order_is_a_conflict_left_alone() -> None:
    other = exchange_order("ta1", symbol="ETH/USDT")
    resolution = resolve_order(row("ta1"), other)
    assert resolution.outcome == "conflict" and resolution.mismatch


def test_fills_build_and_close_a_position() -> None:
    position, pnl = apply_fill(None, "BTC/USDT", "buy", 0.002, 60_000.0, 0.12, now=1.0)
    assert position == Position(symbol="BTC/USDT", amount=0.002, entry_price=60_000.0, opened_at=1)
    position, _ = apply_fill(position, "BTC/USDT", "buy", 0.002, 62_000.0, 0.12, now=2.0)
    assert position is not None and position.entry_price == pytest.approx(61_000.0)
    assert position.opened_at == 1.0 and position.amount == pytest.approx(0.004)
    position, pnl = apply_fill(position, "BTC/USDT", "sell", 0.001, 63_000.0, 0.06, now=3.0)
    assert pnl == pytest.approx(2_000 * 0.001 - 0.06) and position is not None
    position, pnl = apply_fill(position, "BTC/USDT", "sell", 0.003, 61_000.0, 0.18, now=4.0)
    assert position is None and pnl == pytest.approx(-0.18)
    # a buy whose fee was taken in BTC: selling all that is held closes the position
    bought = Position(symbol="BTC/USDT", amount=0.002, entry_price=60_000.0, opened_at=1.0)
    assert apply_fill(bought, "BTC/USDT", "sell", 0.001998, 60_000.0, 0.12, now=2)[0] is None


def test_positions_are_checked_against_balances() -> None:
    assert check_position("BTC/USDT", 0.002, 0.002).mismatch is None
    assert check_position("BTC/USDT", 0.0, 0.0).position_amount is None
    less = check_position("BTC/USDT", 0.002, 0.001)
    assert less.position_amount == 0.001 and less.mismatch is not None
    assert "position set to what the exchange holds" in less.mismatch
    gone = check_position("BTC/USDT", 0.002, 0.0)
    assert gone.position_amount is None and gone.mismatch is not None
    more = check_position("BTC/USDT", 0.002, 0.005)
    assert more.position_amount == 0.002 and more.mismatch is not None
    assert "left alone" in more.mismatch
    assert check_position("BTC/USDT", 0.002, 0.002 + 1e-9, step=1e-6).mismatch is None  # dust


# --- the whole pass, against the paper exchange ---------------------------------------------


@pytest.fixture
def clock_ms() -> list[int]:
    return [int(T0 * 1000)]


@pytest.fixture
def paper(clock_ms: list[int], tmp_path: Path) -> PaperExchange:
    market = SyntheticMarket(anchor_ms=int(T0 * 1000))
    return PaperExchange(market, now_ms=lambda: clock_ms[0], state_path=tmp_path / "state.json")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    db = Database.open(tmp_path / "tradeactors.db")
    yield SqliteLedger(db)
    db.close()


def intent(ledger: SqliteLedger, symbol: str, intent: Intent, amount: float, state: OrderState):
    side = "buy" if intent is Intent.ENTRY else "sell"
    coid = client_order_id(symbol, CANDLE, intent)
    ledger.add_intent(
        OrderRow(
            client_order_id=coid,
            symbol=symbol,
            side=side,
            intent=intent,
            amount=amount,
            candle_ms=CANDLE,
        )
    )
    if state is not OrderState.NEW:
        ledger.update(coid, state=state)
    return coid, OrderRequest(symbol=symbol, side=Side(side), amount=amount, client_order_id=coid)


def test_a_restart_resolves_unknown_orders_and_checks_positions(
    paper: PaperExchange, ledger: SqliteLedger
) -> None:
    # ETH was bought and recorded before the crash: a FILLED row and its position
    eth, eth_request = intent(ledger, "ETH/USDT", Intent.ENTRY, 0.05, OrderState.SENT)
    record_order(ledger, eth, paper.create_order(eth_request), now=T0)
    # BTC: sent, filled by the exchange, then the bot died before recording the answer
    btc, btc_request = intent(ledger, "BTC/USDT", Intent.ENTRY, 0.002, OrderState.SENT)
    paper.create_order(btc_request)
    # SOL: recorded NEW, the bot died before sending it
    sol, _ = intent(ledger, "SOL/USDT", Intent.ENTRY, 0.5, OrderState.NEW)

    report = reconcile(paper, ledger, now=T0 + 5)

    assert report.summary("paper") == (
        "Reconciled with paper: 2 orders resolved (1 filled, 1 never sent), 2 positions, "
        "0 mismatches"
    )
    btc_row, sol_row = ledger.get(btc), ledger.get(sol)
    assert btc_row is not None and btc_row.state is OrderState.FILLED and btc_row.filled == 0.002
    assert sol_row is not None and sol_row.state is OrderState.REJECTED
    assert sol_row.error == "never sent: not on the exchange at the restart"
    positions = ledger.positions()
    assert set(positions) == {"BTC/USDT", "ETH/USDT"}
    assert positions["BTC/USDT"].amount == paper.fetch_balances()["BTC"].total
    assert [f.client_order_id for f in ledger.fills(btc)] == [btc]
    # again: nothing left to do, nothing changes
    again = reconcile(paper, ledger, now=T0 + 6)
    assert again.summary("paper") == (
        "Reconciled with paper: 0 orders resolved, 2 positions, 0 mismatches"
    )
    assert ledger.get(btc) == btc_row and ledger.positions() == positions


def test_a_sell_resolved_at_restart_closes_the_position_and_books_its_pnl(
    paper: PaperExchange, ledger: SqliteLedger, clock_ms: list[int]
) -> None:
    buy, buy_request = intent(ledger, "BTC/USDT", Intent.ENTRY, 0.002, OrderState.SENT)
    record_order(ledger, buy, paper.create_order(buy_request), now=T0)
    clock_ms[0] += 3_600_000
    sell = client_order_id("BTC/USDT", CANDLE + 3_600_000, Intent.EXIT)
    ledger.add_intent(row(sell, OrderState.NEW, side="sell", intent="exit"))
    ledger.update(sell, state=OrderState.SENT)
    sold = paper.create_order(
        OrderRequest(symbol="BTC/USDT", side=Side.SELL, amount=0.002, client_order_id=sell)
    )
    report = reconcile(paper, ledger, now=T0 + 3600)
    assert report.resolved == {"filled": 1} and report.mismatches == []
    assert ledger.positions() == {}
    bought = ledger.fills(buy)[0]
    # after both fills' fees, as the trader reports it (rebuilt from the ledger's fills)
    expected = (sold.average_price - bought.price) * 0.002 - sold.fee_quote - bought.fee_quote  # type: ignore[operator]
    assert TradeBook.of(ledger.fills()).stats().realized_pnl == pytest.approx(expected)


def test_positions_the_exchange_does_not_hold_are_cut_and_reported(
    paper: PaperExchange, ledger: SqliteLedger
) -> None:
    coid, request = intent(ledger, "BTC/USDT", Intent.ENTRY, 0.002, OrderState.SENT)
    record_order(ledger, coid, paper.create_order(request), now=T0)
    # the ledger claims more than the exchange has (e.g. a sale made by hand on the exchange)
    ledger.set_position(
        "BTC/USDT", PositionRow(symbol="BTC/USDT", amount=0.003, entry_price=1.0, opened_at=T0)
    )
    report = reconcile(paper, ledger, now=T0 + 1)
    assert report.positions == 1 and len(report.mismatches) == 1
    assert "position 0.003 BTC in the ledger, the exchange holds 0.002 BTC" in report.mismatches[0]
    assert ledger.positions()["BTC/USDT"].amount == 0.002
    assert report.summary("paper").endswith("1 position, 1 mismatch")


def test_an_exchange_that_cannot_answer_stops_the_pass_and_keeps_what_was_done(
    paper: PaperExchange, ledger: SqliteLedger
) -> None:
    first, request = intent(ledger, "BTC/USDT", Intent.ENTRY, 0.002, OrderState.SENT)
    paper.create_order(request)
    second, _ = intent(ledger, "ETH/USDT", Intent.ENTRY, 0.05, OrderState.SENT)

    class Flaky:
        """The paper exchange whose second lookup times out (the outside world misbehaving)."""

        name = "paper"
        calls = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(paper, name)

        def fetch_order(self, symbol: str, coid: str) -> Order | None:
            Flaky.calls += 1
            if Flaky.calls == 2:
                raise ExchangeError(f"{symbol}: request timed out")
            return paper.fetch_order(symbol, coid)

    with pytest.raises(ExchangeError, match="timed out"):
        reconcile(Flaky(), ledger, now=T0 + 1)  # type: ignore[arg-type]
    assert ledger.get(first).state is OrderState.FILLED  # type: ignore[union-attr]
    assert ledger.get(second).state is OrderState.SENT  # type: ignore[union-attr]
    report = reconcile(paper, ledger, now=T0 + 2)  # the next attempt finishes the job
    assert report.resolved == {"never sent": 1}


class Reads:
    """The ledger, noting the states each read of orders asked for (`()`: every order)."""

    def __init__(self, inner: SqliteLedger) -> None:
        self.inner = inner
        self.order_reads: list[tuple[OrderState, ...]] = []

    def orders(self, *states: OrderState) -> list[OrderRow]:
        self.order_reads.append(states)
        return self.inner.orders(*states)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_retry_asks_only_about_unresolved_orders_and_positions(
    paper: PaperExchange, ledger: SqliteLedger
) -> None:
    """After an unknown outcome the trader reconciles on every candle until it is known: each
    pass must not read the whole ledger again, nor scan every order resting on the exchange
    (on Binance weight 80, an order lookup 4)."""
    for symbol, amount in (("ETH/USDT", 0.05), ("SOL/USDT", 0.5)):  # bought and recorded
        coid, request = intent(ledger, symbol, Intent.ENTRY, amount, OrderState.SENT)
        record_order(ledger, coid, paper.create_order(request), now=T0)
    btc, request = intent(ledger, "BTC/USDT", Intent.ENTRY, 0.002, OrderState.SENT)
    paper.create_order(request)  # the exchange filled it; its answer was lost
    exchange, reads = Stalling(paper), Reads(ledger)

    report = reconcile(exchange, reads, now=T0 + 5, retry=True)  # type: ignore[arg-type]

    assert report.resolved == {"filled": 1} and report.mismatches == []
    assert [(f.client_order_id, f.amount) for f in report.fills] == [(btc, 0.002)]
    assert report.positions == 3  # every position held is still checked against the balances
    assert () not in reads.order_reads  # no read of every order
    asked = [name for name, _ in exchange.asked]
    assert "fetch_open_orders" not in asked
    assert exchange.calls("fetch_order") == [("BTC/USDT", btc)]
    # at the restart the same pass reads everything: orders not placed by the bot show there
    exchange, reads = Stalling(paper), Reads(ledger)
    reconcile(exchange, reads, now=T0 + 6)  # type: ignore[arg-type]
    assert () in reads.order_reads and exchange.calls("fetch_open_orders") == [()]


def test_a_sent_order_is_not_called_never_sent_until_its_recv_window_has_passed(
    paper: PaperExchange, ledger: SqliteLedger
) -> None:
    """A request can still reach the exchange up to its recvWindow after it left: until
    then "not found" proves nothing."""
    late, late_request = intent(ledger, "BTC/USDT", Intent.ENTRY, 0.002, OrderState.NEW)
    lost, _ = intent(ledger, "ETH/USDT", Intent.ENTRY, 0.05, OrderState.NEW)
    for coid in (late, lost):
        ledger.update(coid, state=OrderState.SENT, updated_at=T0)  # both sent at T0
    report = reconcile(paper, ledger, now=T0 + 2, settle_s=6.0)
    assert (report.in_flight, report.retry_at, report.resolved) == (2, T0 + 6, {})
    assert ledger.get(late).state is ledger.get(lost).state is OrderState.SENT  # type: ignore[union-attr]
    assert report.notes[0] == (
        f"BTC/USDT: order {late} (entry) was sent 2.0 s ago and is not on the exchange yet; it "
        "may still arrive until 2026-11-26 00:00:06 UTC (recvWindow): looked up again then"
    )
    assert report.summary("paper").endswith(
        "0 orders resolved, 2 orders maybe still in flight, 0 positions, 0 mismatches"
    )
    paper.create_order(late_request)  # the late one lands after all
    report = reconcile(paper, ledger, now=T0 + 6, settle_s=6.0, retry=True)
    assert (report.in_flight, report.resolved) == (0, {"filled": 1, "never sent": 1})
    assert ledger.get(late).state is OrderState.FILLED  # type: ignore[union-attr]
    never = ledger.get(lost)
    assert never is not None and never.state is OrderState.REJECTED
    assert never.error == "never sent: not on the exchange after an unknown outcome"
    assert any("was SENT after an unknown outcome and the exchange" in n for n in report.notes)


# --- the same pass through ccxt, against the loopback fake Binance ----------------------------


@contextlib.contextmanager
def ccxt_on_the_fake() -> Iterator[tuple[Any, Any]]:
    """(FakeBinance, CcxtExchange driving the real ccxt client against it); the adapter's
    waits are recorded, not slept."""
    from exchange.ccxt_client import CcxtConfig
    from exchange.ccxt_exchange import CcxtExchange
    from exchange.credentials import Credentials
    from tests.fake_binance import API_KEY, API_SECRET, FakeBinance
    from tests.test_exchange_ccxt import FakeTime, real_ms

    with FakeBinance() as fake:
        clock = FakeTime()
        ccxt_port = CcxtExchange(
            CcxtConfig(base_url=fake.url, timeout_ms=3000, rate_limit=False),
            Credentials(API_KEY, API_SECRET),
            now_ms=real_ms,
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        )
        try:
            yield fake, ccxt_port
        finally:
            ccxt_port.close()


def test_reconciliation_through_ccxt_on_the_fake_binance(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "tradeactors.db")
    ledger = SqliteLedger(db)
    with ccxt_on_the_fake() as (fake, ccxt_port):
        btc, btc_request = intent(ledger, "BTC/USDT", Intent.ENTRY, 0.002, OrderState.SENT)
        ccxt_port.create_order(btc_request)  # filled on the exchange, answer lost
        eth, _ = intent(ledger, "ETH/USDT", Intent.ENTRY, 0.05, OrderState.SENT)  # never sent
        report = reconcile(ccxt_port, ledger, now=T0)
        balances = ccxt_port.fetch_balances()
    assert report.mismatches == []
    assert report.summary("binance") == (
        "Reconciled with binance: 2 orders resolved (1 filled, 1 never sent), 1 position, "
        "0 mismatches"
    )
    assert ledger.get(btc).state is OrderState.FILLED  # type: ignore[union-attr]
    assert ledger.get(eth).state is OrderState.REJECTED  # type: ignore[union-attr]
    assert ledger.positions()["BTC/USDT"].amount == pytest.approx(balances["BTC"].total)
    assert [o.client_id for o in fake.orders] == [btc]  # nothing was sent by reconciling
    db.close()


def test_a_round_trip_through_ccxt_leaves_dust_that_is_no_mismatch(tmp_path: Path) -> None:
    """Binance takes a buy's fee in the coin bought, and a sale is rounded down to the
    amount step: a fraction of a step stays on the exchange that can never be sold. Found
    by the kill loop through ccxt: it was reported as a mismatch after every restart."""
    db = Database.open(tmp_path / "tradeactors.db")
    ledger = SqliteLedger(db)
    with ccxt_on_the_fake() as (fake, ccxt_port):
        buy, buy_request = intent(ledger, "BTC/USDT", Intent.ENTRY, 0.001673, OrderState.SENT)
        record_order(ledger, buy, ccxt_port.create_order(buy_request), now=T0)
        held = ledger.positions()["BTC/USDT"].amount
        sell, sell_request = intent(ledger, "BTC/USDT", Intent.EXIT, held, OrderState.SENT)
        record_order(ledger, sell, ccxt_port.create_order(sell_request), now=T0 + 60)
        report = reconcile(ccxt_port, ledger, now=T0 + 120)
        dust = ccxt_port.fetch_balances()["BTC"].total
    step = float(fake._filters["BTC/USDT"][0])
    assert 0 < dust < step  # 0.001673 - 0.1 % fee, sold rounded down to 1e-6: 3.27e-7 stays
    assert report.mismatches == [] and report.notes == []
    assert ledger.positions() == {}
    db.close()


def test_less_than_one_amount_step_more_than_the_position_is_no_mismatch() -> None:
    dust = check_position("BTC/USDT", 0.0, 3.27e-7, step=1e-6)  # unsellable remainder
    assert dust.mismatch is None and dust.position_amount is None
    above = check_position("BTC/USDT", 0.002, 0.002 + 9e-7, step=1e-6)
    assert above.mismatch is None and above.position_amount == 0.002
    sellable = check_position("BTC/USDT", 0.0, 1e-6, step=1e-6)  # a whole step can be sold
    assert sellable.mismatch is not None and "left alone" in sellable.mismatch


def test_a_shortfall_the_size_of_a_fee_adjusts_the_position_without_a_mismatch() -> None:
    fee = check_position("BTC/USDT", 0.002, 0.001998)  # 0.1 % taken in BTC
    assert fee.position_amount == 0.001998 and fee.mismatch is None
    assert fee.note == (
        "BTC/USDT: position 0.002 BTC set to the 0.001998 BTC the exchange holds (fees paid in BTC)"
    )
