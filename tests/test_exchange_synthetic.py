from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import ExchangeSettings
from exchange.synthetic import DEFAULT_SYMBOLS, SymbolSpec, SyntheticMarket, timeframe_ms
from exchange.types import ExchangeError
from models.features import round_trip_cost

DAY = 86_400_000
MIN = 60_000
ANCHOR = 1_735_732_800_000  # 2025-01-01 12:00 UTC


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(ANCHOR)


def test_default_symbols_tell_the_story() -> None:
    by_symbol = {s.symbol: s for s in DEFAULT_SYMBOLS}
    assert list(by_symbol) == [
        "BTC/USDT",
        "ETH/USDT",
        "SOL/USDT",
        "XRP/USDT",
        "ADA/USDT",
        "LINK/USDT",
        "USDC/USDT",
        "PEPE/USDT",
        "WIF/USDT",
        "JUP/USDT",
    ]
    ages = {s: spec.listed_days_before_anchor for s, spec in by_symbol.items()}
    assert ages["BTC/USDT"] == 2000 and ages["LINK/USDT"] == 400
    assert ages["PEPE/USDT"] == 12.5 and ages["WIF/USDT"] == 3 and ages["JUP/USDT"] == 600
    assert [s for s, spec in by_symbol.items() if spec.flat] == ["USDC/USDT"]
    assert [s for s, spec in by_symbol.items() if spec.opens_after_s > 0] == ["JUP/USDT"]
    assert by_symbol["JUP/USDT"].opens_after_s == 1800


def test_deterministic_across_instances(market: SyntheticMarket) -> None:
    other = SyntheticMarket(ANCHOR, seed=7)
    for symbol in ("BTC/USDT", "PEPE/USDT", "USDC/USDT"):
        a = market.candles(symbol, ANCHOR - 3 * DAY, ANCHOR + DAY)
        b = other.candles(symbol, ANCHOR - 3 * DAY, ANCHOR + DAY)
        assert len(a) == 4 * 1440
        np.testing.assert_array_equal(a, b)


@settings(max_examples=40, deadline=None)
@given(
    a=st.integers(ANCHOR - 2 * DAY, ANCHOR + DAY),
    cut1=st.integers(0, 2 * DAY),
    cut2=st.integers(0, 2 * DAY),
)
def test_split_ranges_equal_whole_range(a: int, cut1: int, cut2: int) -> None:
    b, c = a + min(cut1, cut2), a + max(cut1, cut2)
    whole = SyntheticMarket(ANCHOR).candles("SOL/USDT", a, c)
    parts = SyntheticMarket(ANCHOR)  # fresh cache: generation order must not matter
    split = np.concatenate([parts.candles("SOL/USDT", b, c), parts.candles("SOL/USDT", a, b)])
    split = split[np.argsort(split[:, 0])]
    np.testing.assert_array_equal(whole, split)
    assert np.all(whole[:, 0] >= a) and np.all(whole[:, 0] < c)
    assert len(whole) == (-(-c // MIN)) - (-(-a // MIN))


def test_ohlc_consistency_and_continuity(market: SyntheticMarket) -> None:
    for symbol in market.symbols():
        rows = market.candles(symbol, ANCHOR - 3 * DAY, ANCHOR + 2 * DAY)
        t, o, h, low, c, v = rows.T
        assert np.all(np.diff(t) == MIN), symbol
        assert np.all(h >= np.maximum(o, c)), symbol
        assert np.all(low <= np.minimum(o, c)), symbol
        assert np.all(low > 0) and np.all(v > 0), symbol
        # close[t] == open[t+1], exactly, including across UTC day boundaries
        np.testing.assert_array_equal(c[:-1], o[1:])


def test_listing_clip(market: SyntheticMarket) -> None:
    listed = market.listed_ms("PEPE/USDT")
    assert listed == ANCHOR - int(12.5 * DAY)
    assert listed % MIN == 0
    rows = market.candles("PEPE/USDT", ANCHOR - 20 * DAY, ANCHOR)
    assert rows[0, 0] == listed
    assert len(rows) == 12.5 * 1440
    assert market.candles("PEPE/USDT", 0, listed).shape == (0, 6)
    # the first daily candle is the listing's (partial) day, labelled by its UTC day
    daily = market.ohlcv("PEPE/USDT", "1d", ANCHOR - 20 * DAY, ANCHOR)
    assert daily[0, 0] == (listed // DAY) * DAY
    assert daily[0, 1] == rows[0, 1]


def test_listing_is_minute_aligned_for_fractional_ages() -> None:
    spec = SymbolSpec("ODD/USDT", 1.23456789, 10.0, 0.001, 0.1, 1e6)
    m = SyntheticMarket(ANCHOR + 12_345, specs=[spec])
    assert m.listed_ms("ODD/USDT") % MIN == 0
    assert m.candles("ODD/USDT", 0, ANCHOR)[0, 0] == m.listed_ms("ODD/USDT")


def test_different_seeds_differ() -> None:
    a = SyntheticMarket(ANCHOR, seed=1).candles("BTC/USDT", ANCHOR - DAY, ANCHOR)
    b = SyntheticMarket(ANCHOR, seed=2).candles("BTC/USDT", ANCHOR - DAY, ANCHOR)
    assert not np.allclose(a[:, 4], b[:, 4])


def test_symbols_differ_from_each_other(market: SyntheticMarket) -> None:
    a = market.candles("ETH/USDT", ANCHOR - DAY, ANCHOR)[:, 4]
    b = market.candles("SOL/USDT", ANCHOR - DAY, ANCHOR)[:, 4]
    ra, rb = np.diff(np.log(a)), np.diff(np.log(b))
    assert abs(np.corrcoef(ra, rb)[0, 1]) < 0.1


def test_anchor_day_opens_at_start_price(market: SyntheticMarket) -> None:
    day_start = (ANCHOR // DAY) * DAY
    for spec in DEFAULT_SYMBOLS:
        if spec.flat or market.listed_ms(spec.symbol) > day_start:
            continue
        first = market.candles(spec.symbol, day_start, day_start + MIN)
        assert first[0, 1] == pytest.approx(spec.start_price, rel=1e-12)


def test_flat_symbol_stays_near_one(market: SyntheticMarket) -> None:
    rows = market.candles("USDC/USDT", ANCHOR - 60 * DAY, ANCHOR + 30 * DAY)
    assert len(rows) == 90 * 1440
    assert rows[:, 2].max() < 1.005
    assert rows[:, 3].min() > 0.995


def test_returns_have_the_specified_momentum_and_volatility(market: SyntheticMarket) -> None:
    spec = market.spec("LINK/USDT")
    assert spec.trend_per_hour == 0  # trends add their own autocorrelation (tested below)
    close = market.candles("LINK/USDT", ANCHOR - 90 * DAY, ANCHOR)[:, 4]
    r = np.diff(np.log(close))
    ac1 = np.corrcoef(r[1:], r[:-1])[0, 1]
    assert ac1 == pytest.approx(spec.momentum, abs=0.02)
    assert r.std() == pytest.approx(spec.volatility, rel=0.1)


def test_trend_regimes_add_only_a_piecewise_constant_drift() -> None:
    plain = SymbolSpec("T/USDT", 100, 10.0, 0.001, 0.3, 1e7)
    trend = msgspec.structs.replace(plain, trend_per_hour=0.02)
    a = SyntheticMarket(ANCHOR, specs=[plain]).candles("T/USDT", ANCHOR - 3 * DAY, ANCHOR)
    b = SyntheticMarket(ANCHOR, specs=[trend]).candles("T/USDT", ANCHOR - 3 * DAY, ANCHOR)
    days = ANCHOR // DAY * DAY - 3 * DAY + np.arange(4) * DAY
    opens = np.isin(a[:, 0], days)
    np.testing.assert_array_equal(a[opens, 1], b[opens, 1])  # still pinned to the day levels
    step = 0.02 / 60
    for day in days[1:3]:  # two whole days
        rows = (a[:, 0] >= day) & (a[:, 0] < day + DAY)
        extra = np.diff(np.log(b[rows, 4])) - np.diff(np.log(a[rows, 4]))
        # +step (rally), 0 (calm) or -step (slide), less the day's net drift spread evenly
        levels = np.unique(np.round((extra - np.median(extra)) / step))
        assert set(levels) <= {-2.0, -1.0, 0.0, 1.0, 2.0} and len(levels) >= 2
        shift = extra - np.round((extra - np.median(extra)) / step) * step
        assert np.ptp(shift) < 1e-9  # one constant: nothing else of the day changed


def test_only_eth_and_sol_carry_their_last_hour_into_the_next() -> None:
    # What the default model can learn above costs: after an hour that rose > 1.5 %, the
    # next hour of ETH and SOL rises by more than a round trip's 0.3 % on average.
    market = SyntheticMarket(ANCHOR)
    cost = round_trip_cost(ExchangeSettings().fee_rate, ExchangeSettings().slippage_bps)
    for spec in DEFAULT_SYMBOLS:
        if spec.flat or spec.listed_days_before_anchor < 90:
            continue
        hours = market.ohlcv(spec.symbol, "1h", ANCHOR - 90 * DAY, ANCHOR)
        r = np.diff(np.log(hours[:, 4]))
        past, after = r[:-1], r[1:]
        autocorrelation = np.corrcoef(past, after)[0, 1]
        after_a_rise = after[past > 0.015].mean()
        if spec.symbol in ("ETH/USDT", "SOL/USDT"):
            assert spec.trend_per_hour > 0
            assert autocorrelation > 0.3 and after_a_rise > 2 * cost, spec.symbol
        else:
            assert spec.trend_per_hour == 0
            assert abs(autocorrelation) < 0.15 and after_a_rise < cost, spec.symbol


def test_jup_opens_after_the_first_refresh(market: SyntheticMarket) -> None:
    assert not market.is_open("JUP/USDT", ANCHOR)
    assert not market.is_open("JUP/USDT", ANCHOR + 1_799_999)
    assert market.is_open("JUP/USDT", ANCHOR + 1_800_000)
    assert market.is_open("BTC/USDT", ANCHOR)
    assert "JUP/USDT" not in market.tickers(ANCHOR)
    assert "JUP/USDT" in market.tickers(ANCHOR + 1_800_000)
    # its history exists, so it can be trained as soon as it opens
    assert len(market.candles("JUP/USDT", ANCHOR - 14 * DAY, ANCHOR)) == 14 * 1440


def test_not_yet_listed_symbol_is_closed() -> None:
    spec = SymbolSpec("NEW/USDT", -2.0, 1.0, 0.001, 0.1, 1e6)
    m = SyntheticMarket(ANCHOR, specs=[spec])
    assert m.listed_ms("NEW/USDT") == ANCHOR + 2 * DAY
    assert not m.is_open("NEW/USDT", ANCHOR + DAY)
    assert m.is_open("NEW/USDT", ANCHOR + 2 * DAY)
    assert m.tickers(ANCHOR) == {}


def test_aggregated_timeframes_match_minutes(market: SyntheticMarket) -> None:
    start = ANCHOR - DAY + 7 * MIN  # not aligned: buckets start at the next hour
    minutes = market.candles("ETH/USDT", ANCHOR - 2 * DAY, ANCHOR + DAY)
    for tf in ("5m", "15m", "1h", "1d"):
        ms = timeframe_ms(tf)
        agg = market.ohlcv("ETH/USDT", tf, start, ANCHOR)
        assert np.all(agg[:, 0] % ms == 0) and agg[0, 0] >= start and agg[-1, 0] < ANCHOR
        for row in agg[[0, len(agg) // 2, -1]]:
            part = minutes[(minutes[:, 0] >= row[0]) & (minutes[:, 0] < row[0] + ms)]
            assert len(part) == ms // MIN
            assert row[1] == part[0, 1] and row[4] == part[-1, 4]
            assert row[2] == part[:, 2].max() and row[3] == part[:, 3].min()
            assert row[5] == pytest.approx(part[:, 5].sum(), rel=1e-12)
    assert len(market.ohlcv("ETH/USDT", "1h", ANCHOR - DAY, ANCHOR)) == 24


def test_timeframe_ms() -> None:
    assert timeframe_ms("1m") == MIN
    assert timeframe_ms("5m") == 5 * MIN
    assert timeframe_ms("15m") == 15 * MIN
    assert timeframe_ms("1h") == 60 * MIN
    assert timeframe_ms("4h") == 240 * MIN
    assert timeframe_ms("1d") == DAY
    for bad in ("1w", "7m", "abc", "", "0m", "1M"):
        with pytest.raises(ValueError, match=repr(bad)):
            timeframe_ms(bad)


def test_tickers(market: SyntheticMarket) -> None:
    now = ANCHOR + 90 * MIN + 1234
    tickers = market.tickers(now)
    assert set(tickers) == set(market.symbols())  # JUP is open 90 min after the anchor
    btc = tickers["BTC/USDT"]
    last_closed = market.candles("BTC/USDT", now - 2 * MIN, now - now % MIN)[-1]
    assert last_closed[0] + MIN <= now
    assert btc.last == last_closed[4]
    for symbol, t in tickers.items():
        daily = market.spec(symbol).daily_quote_volume
        assert 0.69 * daily <= t.quote_volume <= 1.31 * daily
    assert SyntheticMarket(ANCHOR).tickers(now) == tickers
    # the wobble is slow: a minute later the volume hardly moved, days later it did
    assert market.tickers(now + MIN)["BTC/USDT"].quote_volume == pytest.approx(
        btc.quote_volume, rel=1e-3
    )
    assert market.tickers(now + 3 * DAY)["BTC/USDT"].quote_volume != pytest.approx(
        btc.quote_volume, rel=1e-3
    )


def test_unknown_symbol_is_named(market: SyntheticMarket) -> None:
    with pytest.raises(ExchangeError, match="DOGE/USDT"):
        market.candles("DOGE/USDT", ANCHOR - DAY, ANCHOR)
    with pytest.raises(ExchangeError, match="DOGE/USDT"):
        market.listed_ms("DOGE/USDT")


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"X/USDT.*momentum"):
        SyntheticMarket(ANCHOR, specs=[SymbolSpec("X/USDT", 10, 1.0, 0.001, 1.0, 1e6)])
    with pytest.raises(ValueError, match=r"X/USDT.*trend_per_hour"):
        SyntheticMarket(
            ANCHOR, specs=[SymbolSpec("X/USDT", 10, 1.0, 0.001, 0.1, 1e6, trend_per_hour=-0.01)]
        )
    spec = SymbolSpec("X/USDT", 10, 1.0, 0.001, 0.1, 1e6)
    with pytest.raises(ValueError, match="twice"):
        SyntheticMarket(ANCHOR, specs=[spec, spec])


def test_ninety_days_of_minutes(market: SyntheticMarket) -> None:
    rows = SyntheticMarket(ANCHOR, seed=11).candles("BTC/USDT", ANCHOR - 90 * DAY, ANCHOR)
    assert rows.shape == (90 * 1440, 6)
    assert rows.dtype == np.float64
