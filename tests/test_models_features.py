from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.features import (
    CLOSE,
    FEATURE_NAMES,
    LOOKBACK_BARS,
    VOLUME,
    batch_features,
    latest_features,
    make_labels,
)
from models.synthetic import random_walk_candles

# Features are O(1e-5 .. 10). Relative 1e-9 alone fails for values that are
# zero up to rounding (close == rolling mean to 1e-16), hence the tiny atol.
RTOL = 1e-9
ATOL = 1e-12


def assert_same(latest: np.ndarray, batch_row: pd.Series | np.ndarray) -> None:
    np.testing.assert_allclose(latest, np.asarray(batch_row), rtol=RTOL, atol=ATOL)


def test_shape_and_names() -> None:
    candles = random_walk_candles(300, seed=3)
    df = batch_features(candles)
    assert list(df.columns) == list(FEATURE_NAMES)
    assert len(df) == len(candles)
    assert 8 <= len(FEATURE_NAMES) <= 12
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    # Insufficient lookback gives NaN; the first complete row is LOOKBACK_BARS - 1.
    assert df.iloc[: LOOKBACK_BARS - 1].isna().any(axis=1).all()
    assert df.iloc[LOOKBACK_BARS - 1 :].notna().all(axis=None)
    assert latest_features(candles).shape == (len(FEATURE_NAMES),)


def test_latest_equals_batch_last_row_at_many_points() -> None:
    candles = random_walk_candles(3000, seed=7, momentum=0.2, price=25_000.0)
    df = batch_features(candles)
    for end in range(LOOKBACK_BARS, len(candles) + 1, 97):
        assert_same(latest_features(candles[:end]), df.iloc[end - 1])
    assert_same(latest_features(candles), df.iloc[-1])


def test_latest_uses_only_lookback_rows() -> None:
    candles = random_walk_candles(500, seed=11)
    expected = latest_features(candles)
    mangled = candles.copy()
    mangled[: len(candles) - LOOKBACK_BARS, 1:] = 1e9  # rows it must not read
    np.testing.assert_array_equal(latest_features(mangled), expected)
    np.testing.assert_array_equal(latest_features(candles[-LOOKBACK_BARS:]), expected)


def _with_ndarray_methods(candles: np.ndarray) -> np.ndarray:
    """latest_features as it was written before it called the reductions' ufuncs directly
    (ndarray.mean, .sum, .max, .min): the numbers models were traded on until then."""
    tail = candles[-LOOKBACK_BARS:]
    close, volume, last = tail[:, CLOSE], tail[:, VOLUME], tail[-1]
    c = float(last[CLOSE])
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = np.log(close[1:] / close[:-1])
        out = [np.log(c / close[-1 - w]) for w in (1, 5, 15, 60)]
        for w in (15, 60):
            d = rets[-w:] - rets[-w:].mean()
            out.append(math.sqrt(float((d * d).sum()) / (w - 1)))
        out += [c / close[-w:].mean() - 1.0 for w in (20, 60)]
        out += [(last[2] - last[3]) / c, (c - last[1]) / last[1]]
        v = volume[-60:]
        d = v - v.mean()
        flat = v.max() == v.min()
        out.append(0.0 if flat else (v[-1] - v.mean()) / math.sqrt(float((d * d).sum()) / 60))
    return np.array(out, dtype=np.float64)


def test_latest_is_bit_for_bit_what_it_was() -> None:
    """A model's P(up) must not move by a bit when the features get faster."""
    rng = np.random.default_rng(0)
    for seed in range(8):
        candles = random_walk_candles(300, seed=seed, momentum=0.3)
        candles[rng.random(len(candles)) < 0.02, 4] = np.nan
        candles[100:200, VOLUME] = 5.0  # flat volume for a while
        for end in range(LOOKBACK_BARS, len(candles) + 1, 3):
            window = candles[:end]
            got, expected = latest_features(window), _with_ndarray_methods(window)
            np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64))


def test_latest_needs_lookback() -> None:
    candles = random_walk_candles(LOOKBACK_BARS - 1)
    with pytest.raises(ValueError, match=f"need at least {LOOKBACK_BARS} candles, got 60"):
        latest_features(candles)
    with pytest.raises(ValueError, match="shape"):
        latest_features(np.zeros((100, 3)))


def test_flat_prices_and_volumes() -> None:
    candles = random_walk_candles(200, seed=5)
    candles[:, 1:5] = 1.0  # stable coin: every price exactly 1
    candles[:, VOLUME] = 0.1  # constant volume: z-score defined as 0
    latest = latest_features(candles)
    assert np.isfinite(latest).all()
    assert_same(latest, batch_features(candles).iloc[-1])
    np.testing.assert_array_equal(latest, np.zeros(len(FEATURE_NAMES)))


@st.composite
def random_walks(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(LOOKBACK_BARS, 400))
    candles = random_walk_candles(
        n,
        seed=draw(st.integers(0, 2**32 - 1)),
        price=draw(st.sampled_from([1e-6, 0.01, 1.0, 100.0, 60_000.0])),
        volatility=draw(st.sampled_from([1e-5, 1e-3, 0.02, 0.1])),
        momentum=draw(st.floats(-0.5, 0.5)),
        volume=draw(st.sampled_from([0.001, 1.0, 1e6])),
    )
    if draw(st.booleans()):  # a flat stretch: unchanged price, no trades
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a, n))
        candles[a:b, 1:5] = candles[a, CLOSE]
        candles[a:b, VOLUME] = 0.0
    return candles


@settings(max_examples=150, deadline=None)
@given(random_walks())
def test_latest_equals_batch_hypothesis(candles: np.ndarray) -> None:
    assert_same(latest_features(candles), batch_features(candles).iloc[-1])


@settings(max_examples=60, deadline=None)
@given(random_walks(), st.data())
def test_no_look_ahead(candles: np.ndarray, data: st.DataObject) -> None:
    n = len(candles)
    t = data.draw(st.integers(0, n - 2), label="t")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    changed = candles.copy()
    changed[t + 1 :, 1:] = rng.uniform(0.5, 2.0, (n - t - 1, 5)) * candles[t + 1 :, 1:] + 1e-3
    before = batch_features(candles).iloc[: t + 1]
    after = batch_features(changed).iloc[: t + 1]
    pd.testing.assert_frame_equal(before, after, rtol=RTOL, atol=ATOL)
    if t + 1 >= LOOKBACK_BARS:
        np.testing.assert_array_equal(
            latest_features(changed[: t + 1]), latest_features(candles[: t + 1])
        )


def test_no_look_ahead_fixed() -> None:
    candles = random_walk_candles(1000, seed=2)
    changed = candles.copy()
    changed[500:, 1:] *= 3.0
    pd.testing.assert_frame_equal(
        batch_features(candles).iloc[:500], batch_features(changed).iloc[:500]
    )
    assert not batch_features(changed).iloc[500:].equals(batch_features(candles).iloc[500:])


def tiny_series(closes: list[float]) -> np.ndarray:
    n = len(closes)
    c = np.array(closes)
    return np.column_stack([np.arange(n) * 60_000.0, c, c, c, c, np.ones(n)])


def test_labels_on_handmade_series() -> None:
    candles = tiny_series([100.0, 101.0, 100.5, 100.5, 99.0, 100.0])
    labels = make_labels(candles, horizon_bars=2, threshold=0.0)
    # t=0: 100.5/100 up; t=1: 100.5/101 down; t=2: 99/100.5 down; t=3: 100/100.5 down
    assert labels.iloc[:4].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert labels.iloc[4:].isna().all()
    assert len(labels) == len(candles)

    # Threshold is strict: +0.5% does not beat a 0.5% threshold, +1% does.
    up = tiny_series([100.0, 100.5, 101.0, 101.0])
    assert make_labels(up, 1, 0.005).iloc[:3].tolist() == [0.0, 0.0, 0.0]
    assert make_labels(up, 2, 0.005).iloc[:2].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("horizon", [1, 15, 60])
def test_labels_last_horizon_rows_nan(horizon: int) -> None:
    candles = random_walk_candles(300, seed=4)
    labels = make_labels(candles, horizon, 0.0005)
    assert labels.iloc[-horizon:].isna().all()
    assert labels.iloc[:-horizon].notna().all()
    close = candles[:, CLOSE]
    expected = (close[horizon:] / close[:-horizon] - 1.0 > 0.0005).astype(float)
    np.testing.assert_array_equal(labels.iloc[:-horizon].to_numpy(), expected)


def test_labels_reject_bad_horizon() -> None:
    with pytest.raises(ValueError, match="horizon_bars"):
        make_labels(random_walk_candles(10), 0, 0.0)


def test_latest_is_fast_enough() -> None:
    candles = random_walk_candles(LOOKBACK_BARS + 10, seed=1)
    import time

    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(200):
            latest_features(candles)
        best = min(best, (time.perf_counter() - start) / 200)
    assert best < 500e-6  # ~35 us here; generous for slow CI machines
