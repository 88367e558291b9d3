from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from exchange.paper import PaperExchange
from exchange.port import ExchangePort
from exchange.synthetic import SymbolSpec, SyntheticMarket
from exchange.types import (
    Balance,
    ExchangeError,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    Side,
)

DAY = 86_400_000
MIN = 60_000
HOUR = 60 * MIN
ANCHOR = 1_735_732_800_000  # 2025-01-01 12:00 UTC


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(ANCHOR)


@pytest.fixture
def clock() -> Clock:
    return Clock(ANCHOR + 5 * MIN + 30_000)


@pytest.fixture
def paper(market: SyntheticMarket, clock: Clock) -> PaperExchange:
    return PaperExchange(market, clock)


def buy(symbol: str, amount: float, cid: str, **kw: object) -> OrderRequest:
    return OrderRequest(symbol, Side.BUY, amount, cid, **kw)  # type: ignore[arg-type]


def sell(symbol: str, amount: float, cid: str, **kw: object) -> OrderRequest:
    return OrderRequest(symbol, Side.SELL, amount, cid, **kw)  # type: ignore[arg-type]


def test_implements_the_port(paper: PaperExchange) -> None:
    port: ExchangePort = paper
    assert port.name == "paper"


def test_only_closed_candles(paper: PaperExchange, market: SyntheticMarket, clock: Clock) -> None:
    now = clock.now
    for tf, ms in (("1m", MIN), ("5m", 5 * MIN), ("1h", HOUR), ("1d", DAY)):
        rows = paper.fetch_ohlcv("BTC/USDT", tf, limit=10)
        assert len(rows) == 10
        times = [r[0] for r in rows]
        assert times == sorted(times)
        assert times[-1] + ms <= now < times[-1] + 2 * ms, tf
    rows = paper.fetch_ohlcv("BTC/USDT", "1m", limit=3)
    expected = market.candles("BTC/USDT", now - now % MIN - 3 * MIN, now - now % MIN)
    assert rows == expected.tolist()
    # the candle still forming is never returned, even if asked for explicitly
    assert paper.fetch_ohlcv("BTC/USDT", "1m", since_ms=now - now % MIN) == []
    clock.now = now - now % MIN + MIN  # it just closed
    assert len(paper.fetch_ohlcv("BTC/USDT", "1m", since_ms=now - now % MIN)) == 1


def test_fetch_ohlcv_paging(paper: PaperExchange, market: SyntheticMarket) -> None:
    since = ANCHOR - 2 * DAY + 17  # not aligned: first candle is the next minute
    rows = paper.fetch_ohlcv("ETH/USDT", "1m", since_ms=since, limit=500)
    assert len(rows) == 500
    assert rows[0][0] == ANCHOR - 2 * DAY + MIN
    assert [r[0] for r in rows] == [rows[0][0] + i * MIN for i in range(500)]
    assert len(paper.fetch_ohlcv("ETH/USDT", "1m", since_ms=since, limit=5000)) == 1000
    # since before the listing: the page starts at the listing
    pepe = paper.fetch_ohlcv("PEPE/USDT", "1m", since_ms=0, limit=5)
    assert pepe[0][0] == market.listed_ms("PEPE/USDT")
    with pytest.raises(ExchangeError, match="2w"):
        paper.fetch_ohlcv("ETH/USDT", "2w")


def test_unknown_symbol(paper: PaperExchange) -> None:
    with pytest.raises(ExchangeError, match="DOGE/USDT"):
        paper.fetch_ohlcv("DOGE/USDT", "1m")
    assert paper.history_start_ms("DOGE/USDT") is None
    with pytest.raises(OrderRejected, match="DOGE/USDT"):
        paper.create_order(buy("DOGE/USDT", 10, "c1"))


def test_markets(paper: PaperExchange, market: SyntheticMarket, clock: Clock) -> None:
    markets = paper.load_markets()
    assert set(markets) == set(market.symbols())
    btc = markets["BTC/USDT"]
    assert (btc.base, btc.quote, btc.spot, btc.active) == ("BTC", "USDT", True, True)
    assert btc.amount_step == 1e-6 and btc.min_notional == 5.0
    assert markets["PEPE/USDT"].amount_step == 1.0
    assert not markets["JUP/USDT"].active
    assert paper.history_start_ms("PEPE/USDT") == market.listed_ms("PEPE/USDT")
    clock.now = ANCHOR + 1800 * 1000
    assert paper.load_markets()["JUP/USDT"].active
    assert "JUP/USDT" in paper.fetch_tickers()


def test_future_listing_is_invisible() -> None:
    specs = [
        SymbolSpec("BTC/USDT", 100, 50_000.0, 0.001, 0.1, 1e9),
        SymbolSpec("NEW/USDT", -1.0, 2.0, 0.001, 0.1, 1e6),
    ]
    clock = Clock(ANCHOR)
    paper = PaperExchange(SyntheticMarket(ANCHOR, specs=specs), clock)
    assert set(paper.load_markets()) == {"BTC/USDT"}
    assert paper.history_start_ms("NEW/USDT") is None
    with pytest.raises(ExchangeError, match="NEW/USDT"):
        paper.fetch_ohlcv("NEW/USDT", "1m")
    clock.now = ANCHOR + DAY + 2 * MIN
    assert paper.load_markets()["NEW/USDT"].active
    assert len(paper.fetch_ohlcv("NEW/USDT", "1m")) == 2


def test_buy_then_sell_costs_exactly_fees_and_slippage(
    paper: PaperExchange, market: SyntheticMarket, clock: Clock
) -> None:
    last = market.last_closed("BTC/USDT", clock.now)
    assert last is not None
    ref = float(last[4])
    b = paper.create_order(buy("BTC/USDT", 0.01, "b1"))
    assert b.status is OrderStatus.CLOSED and b.filled == 0.01 and b.remaining == 0
    assert b.average_price is not None
    assert b.average_price == pytest.approx(ref * 1.0005, rel=1e-12)
    assert b.fee_quote == pytest.approx(0.01 * ref * 1.0005 * 0.001, rel=1e-12)
    mid = paper.fetch_balances()
    assert mid["BTC"].free == 0.01
    assert mid["USDT"].free == pytest.approx(10_000 - 0.01 * b.average_price - b.fee_quote)
    s = paper.create_order(sell("BTC/USDT", 0.01, "s1"))
    assert s.average_price is not None
    assert s.average_price == pytest.approx(ref * 0.9995, rel=1e-12)
    slippage = 0.01 * (b.average_price - s.average_price)
    balances = paper.fetch_balances()
    assert balances["USDT"].free == pytest.approx(
        10_000 - b.fee_quote - s.fee_quote - slippage, rel=0, abs=1e-9
    )
    assert balances["USDT"].used == 0
    assert "BTC" not in balances  # nothing held any more
    assert [b.exchange_order_id, s.exchange_order_id] == ["paper-1", "paper-2"]


def test_amount_is_rounded_down_to_the_step(paper: PaperExchange) -> None:
    order = paper.create_order(buy("BTC/USDT", 0.0123456789, "r1"))
    assert order.amount == 0.012345 and order.filled == 0.012345
    assert paper.fetch_balances()["BTC"].free == 0.012345


def test_duplicate_client_order_id_fills_once(paper: PaperExchange) -> None:
    first = paper.create_order(buy("ETH/USDT", 0.1, "dup"))
    after_first = paper.fetch_balances()
    again = paper.create_order(buy("ETH/USDT", 0.1, "dup"))
    assert again == first
    assert paper.fetch_balances() == after_first
    with pytest.raises(OrderRejected, match="dup"):
        paper.create_order(sell("ETH/USDT", 0.1, "dup"))
    assert paper.create_order(buy("ETH/USDT", 0.1, "next")).exchange_order_id == "paper-2"


def test_refusals_name_symbol_and_limits(paper: PaperExchange) -> None:
    with pytest.raises(OrderRejected) as e:
        paper.create_order(buy("BTC/USDT", 1e-7, "small"))
    assert "BTC/USDT" in str(e.value) and "minimum amount 1e-06" in str(e.value)
    with pytest.raises(OrderRejected) as e:
        paper.create_order(buy("BTC/USDT", 0.00005, "tiny"))
    msg = str(e.value)
    assert "BTC/USDT" in msg and "notional" in msg and "minimum notional 5 USDT" in msg
    with pytest.raises(OrderRejected) as e:
        paper.create_order(buy("BTC/USDT", 1.0, "big"))
    msg = str(e.value)
    assert "BTC/USDT" in msg and "insufficient USDT" in msg and "available 10000 USDT" in msg
    with pytest.raises(OrderRejected, match=r"ETH/USDT.*insufficient ETH.*available 0 ETH"):
        paper.create_order(sell("ETH/USDT", 0.1, "nothing"))
    with pytest.raises(OrderRejected, match=r"JUP/USDT.*not active"):
        paper.create_order(buy("JUP/USDT", 100, "early"))
    # nothing was recorded or spent
    assert paper.fetch_balances()["USDT"].free == 10_000
    assert paper.fetch_order("BTC/USDT", "big") is None


def test_limit_orders_are_refused_and_nothing_rests(
    paper: PaperExchange, market: SyntheticMarket, clock: Clock
) -> None:
    """The bot sends market orders only; a limit order, marketable or not, is refused
    with the reason, records nothing and spends nothing."""
    last = market.last_closed("BTC/USDT", clock.now)
    assert last is not None
    for cid, price in (("below", last[4] * 0.5), ("above", last[4] * 1.01), ("none", None)):
        request = buy("BTC/USDT", 0.01, cid, kind="limit", price=price)
        with pytest.raises(OrderRejected, match=r"BTC/USDT: .*market orders only.*'limit'"):
            paper.create_order(request)
        assert paper.fetch_order("BTC/USDT", cid) is None
    assert paper.fetch_balances() == {"USDT": Balance("USDT", 10_000.0, 0.0)}
    assert paper.fetch_open_orders() == []


def test_cancel_returns_the_filled_order_and_names_an_unknown_one(
    paper: PaperExchange, clock: Clock
) -> None:
    order = paper.create_order(buy("BTC/USDT", 0.01, "done"))
    after = paper.fetch_balances()
    clock.now += HOUR
    assert paper.cancel_order("BTC/USDT", "done") == order  # filled: nothing to cancel
    assert paper.fetch_balances() == after
    with pytest.raises(ExchangeError, match=r"BTC/USDT: no order .*'nope'"):
        paper.cancel_order("BTC/USDT", "nope")
    with pytest.raises(ExchangeError, match=r"ETH/USDT: no order .*'done'"):
        paper.cancel_order("ETH/USDT", "done")


def test_state_round_trip(market: SyntheticMarket, clock: Clock, tmp_path: Path) -> None:
    path = tmp_path / "state" / "paper.json"
    one = PaperExchange(market, clock, state_path=path)
    assert path.exists()
    one.create_order(buy("SOL/USDT", 2.0, "a"))
    one.create_order(buy("BTC/USDT", 0.01, "b"))
    balances = one.fetch_balances()
    order_a = one.fetch_order("SOL/USDT", "a")
    # no close(): every change is already on disk
    two = PaperExchange(market, clock, state_path=path, starting_balance=123.0)
    assert two.fetch_balances() == balances
    assert two.fetch_order("SOL/USDT", "a") == order_a
    assert two.create_order(buy("SOL/USDT", 2.0, "a")) == order_a  # replay: no second fill
    assert two.fetch_balances() == balances
    assert two.create_order(buy("SOL/USDT", 1.0, "c")).exchange_order_id == "paper-3"
    two.close()
    assert not list(path.parent.glob("*.tmp"))
    assert json.loads(path.read_bytes())["counter"] == 3


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"quote": "USDT"}', b"[1, 2]"])
def test_corrupt_state_file_is_an_error(
    market: SyntheticMarket, clock: Clock, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "paper.json"
    path.write_bytes(content)
    with pytest.raises(ExchangeError, match=str(path)):
        PaperExchange(market, clock, state_path=path)
    assert path.read_bytes() == content  # never silently reset


def test_truncated_state_file_is_an_error(
    market: SyntheticMarket, clock: Clock, tmp_path: Path
) -> None:
    path = tmp_path / "paper.json"
    PaperExchange(market, clock, state_path=path).create_order(buy("BTC/USDT", 0.01, "x"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ExchangeError, match="corrupt"):
        PaperExchange(market, clock, state_path=path)


def test_state_written_with_resting_limit_orders_loads_unless_one_is_open(
    market: SyntheticMarket, clock: Clock, tmp_path: Path
) -> None:
    """Files from the version that rested limit orders carry `used` and `next_check_ms`:
    read as before when no order is open; an open one, which nothing would fill or
    release now, is refused by name rather than silently dropped."""
    path = tmp_path / "paper.json"
    PaperExchange(market, clock, state_path=path).create_order(buy("BTC/USDT", 0.01, "x"))
    state = json.loads(path.read_bytes())
    state["next_check_ms"] = {}
    for funds in state["balances"].values():
        funds["used"] = 0.0
    path.write_text(json.dumps(state))
    old = PaperExchange(market, clock, state_path=path)
    assert old.fetch_balances()["BTC"] == Balance("BTC", 0.01, 0.0)
    resting = dict(state["orders"]["x"], client_order_id="r", status="open", filled=0.0)
    state["orders"]["r"] = resting
    state["next_check_ms"] = {"r": clock.now}
    path.write_text(json.dumps(state))
    with pytest.raises(ExchangeError, match=r"order 'r' is open \(a resting limit order"):
        PaperExchange(market, clock, state_path=path)


def test_state_for_another_quote_is_refused(
    market: SyntheticMarket, clock: Clock, tmp_path: Path
) -> None:
    path = tmp_path / "paper.json"
    PaperExchange(market, clock, state_path=path)
    with pytest.raises(ExchangeError, match="quote"):
        PaperExchange(market, clock, quote="USD", state_path=path)


def test_concurrent_orders(paper: PaperExchange) -> None:
    def worker(k: int) -> None:
        for i in range(20):
            paper.create_order(buy("XRP/USDT", 10.0, f"t{k}-{i % 10}"))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = {
        paper.fetch_order("XRP/USDT", f"t{k}-{i}").exchange_order_id  # type: ignore[union-attr]
        for k in range(4)
        for i in range(10)
    }
    assert len(ids) == 40
    assert paper.fetch_balances()["XRP"].free == pytest.approx(400.0)


def test_the_paper_default_never_imports_ccxt(tmp_path: Path) -> None:
    """`import ccxt` costs ~0.9 s at every start: only `exchange.kind: ccxt` pays it."""
    script = f"""
import sys
import msgspec
from actors.clock import VirtualClock
from app.builders import build_exchange
from config.settings import Settings
settings = msgspec.convert({{"data_dir": {str(tmp_path)!r}}}, Settings)
exchange = build_exchange(settings, VirtualClock(start=1_735_732_800.0)).orders
assert exchange.name == "paper", exchange.name
print("ccxt" in sys.modules)
"""
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"
