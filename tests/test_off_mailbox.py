"""Exchange I/O stays off the mailboxes: while the exchange stalls on an admin's close or
universe refresh, the actor answers other messages, and the command then completes once.

Whole bots on a virtual clock with the paper exchange; the role under test goes through
`Stalling`, which holds the chosen call until the test releases it. The waits are on
events (the call was entered, the answer came); no time passes but the virtual clock's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pykka

from actors.base import Later, ask
from actors.messages import (
    CloseAll,
    CloseSymbol,
    CommandResult,
    CoverageChecked,
    GetSymbols,
    GetTraderStatus,
    ModelsUpdated,
    OrderFailed,
    Reconciled,
    RefreshUniverse,
    TraderStatus,
    UniverseRefreshed,
    UniverseTick,
)
from app.builders import build_paper_exchange
from exchange.port import ExchangeRoles
from exchange.synthetic import SyntheticMarket
from exchange.types import Side, TransientExchangeError
from policy.risk import Intent
from storage.ledger import OrderState
from tests.harness import EVERY_CANDLE, HOLD, T0, Bot, Stalling, new_clock, settle
from tests.test_actors_isolated import CoverageRig

BOTH = ["BTC/USDT", "ETH/USDT"]


def bot_with(tmp_path: Path, bots: list[Bot], role: str, **sections: Any) -> tuple[Bot, Stalling]:
    """A bot whose `role` client (orders, market_data or downloads) can be made to stall."""
    stalling: list[Stalling] = []

    def roles(paper: Any) -> ExchangeRoles:
        stalling.append(Stalling(paper))
        return ExchangeRoles.single(paper)._replace(**{role: stalling[0]})

    bot = Bot(tmp_path, BOTH, roles=roles, **sections)
    bots.append(bot)
    bot.start()
    return bot, stalling[0]


def ref(bot: Bot, actor: str) -> pykka.ActorRef[Any]:
    found = bot.system.addresses[actor].ref
    assert found is not None
    return found


def later(actor: pykka.ActorRef[Any], message: Any) -> Later:
    """Ask; the reply is one to come (the handler returned at once, without the exchange)."""
    reply = actor.ask(message, timeout=10)
    assert isinstance(reply, Later), reply
    return reply


def held(bot: Bot) -> set[str]:
    status: TraderStatus = ask(ref(bot, "trader"), GetTraderStatus())
    return {p.symbol for p in status.positions}


def test_a_close_asks_the_exchange_outside_the_trader_and_sells_once(
    tmp_path: Path, bots: list[Bot]
) -> None:
    bot, orders = bot_with(tmp_path, bots, "orders", trading={**HOLD, "max_open_positions": 5})
    bot.run(120)
    assert held(bot) == set(BOTH)
    trader = ref(bot, "trader")
    orders.hold("fetch_ohlcv")
    # the ask returns at once with the reply to come (the old handler waited right here)
    first = later(trader, CloseSymbol(symbol="ETH/USDT"))
    assert orders.entered["fetch_ohlcv"].wait(30)
    assert held(bot) == set(BOTH)  # the trader answers while the price lookup stalls
    orders.hold("create_order")
    orders.release("fetch_ohlcv")
    assert orders.entered["create_order"].wait(30)
    assert held(bot) == set(BOTH)  # ... and while the sale stalls
    (row,) = bot.system.ledger.orders(OrderState.SENT)  # recorded before it was sent
    assert (row.symbol, row.intent) == ("ETH/USDT", Intent.CLOSE)
    # asked again meanwhile: the close in flight answers them, nothing is sent twice
    again = later(trader, CloseSymbol(symbol="ETH/USDT"))
    everything = later(trader, CloseAll())
    orders.release("create_order")
    closed = CommandResult(ok=True, detail="ETH/USDT: position closed")
    assert first.get(30) == closed
    assert again.get(30) == closed
    assert everything.get(30) == CommandResult(ok=True, detail="closed 2 positions")
    bot.settle()
    assert held(bot) == set()
    closes = [r for r in bot.system.ledger.orders() if r.intent == Intent.CLOSE]
    assert sorted((r.symbol, r.state) for r in closes) == [
        ("BTC/USDT", OrderState.FILLED),
        ("ETH/USDT", OrderState.FILLED),
    ]
    sales = [request for (request,) in orders.calls("create_order") if request.side is Side.SELL]
    assert sorted(s.symbol for s in sales) == ["BTC/USDT", "ETH/USDT"]  # one each, no more


def test_an_admin_refresh_looks_the_universe_up_outside_coverage_once(
    tmp_path: Path, bots: list[Bot]
) -> None:
    bot, downloads = bot_with(tmp_path, bots, "downloads")
    coverage = ref(bot, "coverage")
    bot.events.clear()
    asked_before = len(downloads.calls("load_markets"))
    downloads.hold("load_markets")
    first = later(coverage, RefreshUniverse())
    assert downloads.entered["load_markets"].wait(30)
    states = ask(coverage, GetSymbols())  # coverage answers while the lookup stalls
    assert {r.symbol for r in states.records} == set(BOTH)
    # asked again, and the periodic refresh due meanwhile: the same lookup serves them all
    again = later(coverage, RefreshUniverse())
    coverage.tell(UniverseTick(at=bot.clock.now()))
    ask(coverage, GetSymbols())  # the tick has been handled
    downloads.release("load_markets")
    refreshed = CommandResult(ok=True, detail="universe refreshed and evaluated: 2 symbols")
    assert first.get(30) == refreshed and again.get(30) == refreshed
    bot.settle()
    assert len(downloads.calls("load_markets")) == asked_before + 1
    assert len(bot.events.of(UniverseRefreshed)) == 1
    assert [c.trigger for c in bot.events.of(CoverageChecked)] == ["universe"]


class StartUnknownAtFirst:
    """The exchange does not answer the first history-start lookup of `symbol`."""

    def __init__(self, inner: Any, symbol: str) -> None:
        self.inner, self.symbol, self.failed = inner, symbol, False

    def history_start_ms(self, symbol: str) -> int | None:
        if symbol == self.symbol and not self.failed:
            self.failed = True
            raise TransientExchangeError(f"{symbol}: read timed out")
        start: int | None = self.inner.history_start_ms(symbol)
        return start

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_admin_refresh_asked_during_a_history_start_lookup_follows_it() -> None:
    clock = new_clock()
    paper = build_paper_exchange(SyntheticMarket(anchor_ms=int(T0 * 1000)), clock)
    exchange = Stalling(StartUnknownAtFirst(paper, "PEPE/USDT"))
    rig = CoverageRig(exchange, clock, ["BTC/USDT", "PEPE/USDT", "USDC/USDT"])  # type: ignore[arg-type]
    rig.ref.tell(ModelsUpdated(version=None, symbols=(), models={}))
    settle(rig.runtime)  # the startup refresh; PEPE's and USDC's history starts stay unknown
    exchange.hold("history_start_ms")
    clock.advance(300)  # the coverage check looks the unknown starts up (no refresh)
    assert exchange.entered["history_start_ms"].wait(30)
    asked_before = len(exchange.asked)
    refresh = later(rig.ref, RefreshUniverse())
    assert {r.symbol for r in ask(rig.ref, GetSymbols()).records} == {
        "BTC/USDT",
        "PEPE/USDT",
        "USDC/USDT",
    }
    assert len(exchange.asked) == asked_before  # no second lookup while one runs
    exchange.release("history_start_ms")
    assert refresh.get(30) == CommandResult(
        ok=True, detail="universe refreshed and evaluated: 3 symbols"
    )
    settle(rig.runtime)
    after = [name for name, _ in exchange.asked[asked_before:]]
    assert after[:2] == ["history_start_ms", "load_markets"]  # USDC's start, then the refresh
    assert after.count("load_markets") == 1


class AnswerLost:
    """The exchange places `symbol`'s next sale, but its answer never arrives."""

    def __init__(self, inner: Any, symbol: str) -> None:
        self.inner, self.symbol, self.lost = inner, symbol, False

    def create_order(self, request: Any) -> Any:
        order = self.inner.create_order(request)
        if request.symbol == self.symbol and request.side is Side.SELL and not self.lost:
            self.lost = True
            raise TransientExchangeError(f"{request.symbol}: read timed out")
        return order

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_no_reconciliation_runs_while_a_close_is_on_the_wire(
    tmp_path: Path, bots: list[Bot]
) -> None:
    """A close on the wire is SENT but maybe not on the exchange yet: a reconciliation then
    (another order's outcome became unknown) would call it never sent, and its answer could
    no longer be recorded. The reconciliation waits for the answer."""
    stalling: list[Stalling] = []

    def roles(paper: Any) -> ExchangeRoles:
        stalling.append(Stalling(AnswerLost(paper, "BTC/USDT")))
        return ExchangeRoles.single(paper)._replace(orders=stalling[0])

    bot = Bot(tmp_path, BOTH, roles=roles, trading=EVERY_CANDLE)
    bots.append(bot)
    bot.start()  # both bought on the last closed candle
    assert held(bot) == set(BOTH)
    orders, trader = stalling[0], ref(bot, "trader")
    orders.hold("create_order", only=lambda request: request.symbol == "ETH/USDT")
    close = later(trader, CloseSymbol(symbol="ETH/USDT"))
    assert orders.entered["create_order"].wait(30)
    bot.clock.advance(65)  # the next trade tick: BTC exits, its answer lost, so no more orders
    assert [f.symbol for f in bot.events.of(OrderFailed)] == ["BTC/USDT"]
    bot.clock.advance(60)  # the next candle's reconciliation waits for the close's answer
    assert bot.events.of(Reconciled)[-1].at == T0  # the start's only
    orders.release("create_order")
    assert close.get(30) == CommandResult(ok=True, detail="ETH/USDT: position closed")
    bot.clock.advance(60)  # now it reconciles: BTC's exit was filled
    bot.settle()
    assert bot.events.of(Reconciled)[-1].resolved == {"filled": 1}
    rows = {(r.symbol, r.intent): r.state for r in bot.system.ledger.orders()}
    assert rows[("ETH/USDT", Intent.CLOSE)] is OrderState.FILLED
    assert rows[("BTC/USDT", Intent.EXIT)] is OrderState.FILLED
