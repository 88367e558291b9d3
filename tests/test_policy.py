"""Pure trading policy: risk decisions, client order ids, universe selection."""

from __future__ import annotations

import re

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from exchange.types import Market, Ticker
from policy.risk import Intent, Position, RiskLimits, client_order_id, decide
from policy.universe import select_universe

LIMITS = RiskLimits(
    stake_quote=100,
    max_open_positions=2,
    stop_loss_pct=2.0,
    entry_threshold=0.55,
    exit_threshold=0.45,
)
HELD = Position(symbol="BTC/USDT", amount=0.01, entry_price=100.0, opened_at=0.0)


def _decide(
    prob: float | None, price: float = 100.0, position: Position | None = None, **kw: object
):
    args = {"open_positions": 0, "paused": False, "limits": LIMITS, "now": 0.0} | kw
    return decide(symbol="BTC/USDT", prob_up=prob, price=price, position=position, **args)  # type: ignore[arg-type]


def test_entry_sizes_the_stake_in_base_units() -> None:
    d = _decide(0.6, price=50.0)
    assert d is not None and d.intent is Intent.ENTRY and d.amount == 2.0


def test_no_entry_below_threshold_when_paused_or_at_max_positions() -> None:
    assert _decide(0.54) is None
    assert _decide(0.9, paused=True) is None
    assert _decide(0.9, open_positions=2) is None
    assert _decide(None) is None  # not ACTIVE: no signal, no entry


def test_stop_loss_applies_even_without_a_signal() -> None:
    d = _decide(None, price=97.9, position=HELD)
    assert d is not None and d.intent is Intent.STOP_LOSS and d.amount == HELD.amount
    assert _decide(None, price=98.1, position=HELD) is None


def test_exit_on_a_sell_signal_even_while_paused() -> None:
    d = _decide(0.40, position=HELD, paused=True)
    assert d is not None and d.intent is Intent.EXIT


TURNOVER = msgspec.structs.replace(
    LIMITS, bar_s=60.0, min_hold_bars=5, cooldown_bars=10, max_hold_bars=30
)
OPENED = Position(symbol="BTC/USDT", amount=0.01, entry_price=100.0, opened_at=6_000.0)


def _held(candles: float, prob: float | None, price: float = 100.0):
    """Decide on the position OPENED, `candles` candles after its entry (clock jitter included)."""
    now = OPENED.opened_at + candles * 60.0
    return _decide(prob, price=price, position=OPENED, limits=TURNOVER, now=now)


def test_a_sell_signal_waits_for_the_minimum_hold_but_the_stop_loss_does_not() -> None:
    assert _held(1, 0.1) is None
    assert _held(4.4, 0.1) is None  # 4 candles and a few seconds late: still 4
    exit_ = _held(5, 0.1)
    assert exit_ is not None and exit_.intent is Intent.EXIT
    stop = _held(1, 0.9, price=97.0)
    assert stop is not None and stop.intent is Intent.STOP_LOSS


def test_hysteresis_holds_between_the_thresholds() -> None:
    # after the minimum hold, a P(up) between exit (0.45) and entry (0.55) keeps the position
    assert _held(6, 0.5) is None and _held(6, 0.46) is None
    assert _held(6, 0.45) is not None
    # and without a position the same P(up) does not enter
    assert _decide(0.5, limits=TURNOVER) is None


def test_max_hold_exits_whatever_the_signal_even_without_one() -> None:
    assert _held(29, 0.99) is None
    for prob in (0.99, None):
        d = _held(30, prob)
        assert d is not None and d.intent is Intent.EXIT and "held 30 candles" in d.why


def test_no_entry_during_the_cooldown_after_an_exit() -> None:
    exited = 12_000.0
    for candles, allowed in [(1, False), (9, False), (9.6, True), (10, True), (40, True)]:
        d = _decide(0.9, limits=TURNOVER, now=exited + candles * 60.0, last_exit_at=exited)
        assert (d is not None) is allowed, candles
    # a symbol never exited has no cooldown
    assert _decide(0.9, limits=TURNOVER, now=exited, last_exit_at=None) is not None


@given(st.floats(0, 1), st.floats(0.01, 1e6), st.integers(0, 5), st.booleans(), st.booleans())
def test_decisions_respect_every_limit(
    prob: float, price: float, open_n: int, paused: bool, held: bool
) -> None:
    position = (
        Position(symbol="BTC/USDT", amount=1.0, entry_price=price, opened_at=0.0) if held else None
    )
    d = _decide(prob, price=price, position=position, open_positions=open_n, paused=paused)
    if d is None:
        return
    if d.intent is Intent.ENTRY:
        assert not held and not paused and open_n < LIMITS.max_open_positions
        assert prob >= LIMITS.entry_threshold
    else:
        assert held and d.amount == 1.0


def test_client_order_id_is_stable_distinct_and_exchange_safe() -> None:
    a = client_order_id("BTC/USDT", 1_795_651_200_000, Intent.ENTRY)
    assert a == client_order_id("BTC/USDT", 1_795_651_200_000, Intent.ENTRY)
    others = {
        client_order_id("BTC/USDT", 1_795_651_260_000, Intent.ENTRY),
        client_order_id("BTC/USDT", 1_795_651_200_000, Intent.EXIT),
        client_order_id("ETH/USDT", 1_795_651_200_000, Intent.ENTRY),
    }
    assert a not in others and len(others) == 3
    assert re.fullmatch(r"[.A-Z:/a-z0-9_-]{1,36}", a)  # Binance's newClientOrderId rule


def _market(symbol: str, active: bool = True, quote: str = "USDT") -> Market:
    base = symbol.split("/")[0]
    return Market(symbol=symbol, base=base, quote=quote, active=active)


def test_universe_is_top_n_by_volume_minus_blacklist_and_inactive() -> None:
    markets = {
        m.symbol: m
        for m in [
            _market("BTC/USDT"),
            _market("ETH/USDT"),
            _market("BTCUP/USDT"),
            _market("SOL/USDT", active=False),
            _market("ETH/BTC", quote="BTC"),
            _market("XRP/USDT"),
        ]
    }
    volume = {
        "BTC/USDT": 9e9,
        "ETH/USDT": 5e9,
        "BTCUP/USDT": 8e9,
        "SOL/USDT": 7e9,
        "ETH/BTC": 6e9,
        "XRP/USDT": 1e9,
    }
    tickers = {s: Ticker(symbol=s, last=1.0, quote_volume=v) for s, v in volume.items()}
    chosen = select_universe(markets, tickers, quote="USDT", top_n=2, blacklist=["*UP/USDT"])
    assert chosen == ["BTC/USDT", "ETH/USDT"]
    static = select_universe(
        markets, tickers, quote="USDT", top_n=2, static=["XRP/USDT", "SOL/USDT", "NOPE/USDT"]
    )
    assert static == ["XRP/USDT"]
