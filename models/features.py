"""Features and labels computed from OHLCV candles.

There is one feature definition, ``FEATURE_SPECS``, and two evaluators of it:

* ``batch_features`` -- vectorised over every row (numpy sliding windows, returned
  as a pandas DataFrame), used for training;
* ``latest_features`` -- plain numpy over the last ``LOOKBACK_BARS`` rows only,
  used on every tick by the trader (tens of microseconds).

Both evaluate the same formulas and are tested equal. Every feature at row ``t``
uses only rows ``<= t``. Candles are a float64 array of shape ``(N, 6)`` with the
columns time_ms, open, high, low, close, volume, oldest first.
"""

from __future__ import annotations

import enum
import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

# Rows per block in the batch evaluator's rolling windows (bounds temporaries to ~8 MB).
_CHUNK = 16_384

# Column indexes of a candle row.
TIME, OPEN, HIGH, LOW, CLOSE, VOLUME = range(6)


class Kind(enum.Enum):
    LOG_RETURN = "log_return"  # log(close[t] / close[t - w])
    VOLATILITY = "volatility"  # sample std (ddof=1) of the last w one-bar log returns
    CLOSE_VS_MEAN = "close_vs_mean"  # close[t] / mean(close[t-w+1 .. t]) - 1
    HL_RANGE = "hl_range"  # (high[t] - low[t]) / close[t]
    BODY = "body"  # (close[t] - open[t]) / open[t]
    VOLUME_Z = "volume_z"  # (volume[t] - mean) / std (ddof=0) over the last w; 0 if flat


class FeatureSpec(NamedTuple):
    name: str
    kind: Kind
    window: int = 1

    @property
    def bars_needed(self) -> int:
        """How many rows (ending at t) this feature needs to be defined at t."""
        if self.kind in (Kind.LOG_RETURN, Kind.VOLATILITY):
            return self.window + 1
        return self.window


FEATURE_SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec("ret_1", Kind.LOG_RETURN, 1),
    FeatureSpec("ret_5", Kind.LOG_RETURN, 5),
    FeatureSpec("ret_15", Kind.LOG_RETURN, 15),
    FeatureSpec("ret_60", Kind.LOG_RETURN, 60),
    FeatureSpec("vol_15", Kind.VOLATILITY, 15),
    FeatureSpec("vol_60", Kind.VOLATILITY, 60),
    FeatureSpec("close_vs_mean_20", Kind.CLOSE_VS_MEAN, 20),
    FeatureSpec("close_vs_mean_60", Kind.CLOSE_VS_MEAN, 60),
    FeatureSpec("hl_range", Kind.HL_RANGE),
    FeatureSpec("body", Kind.BODY),
    FeatureSpec("volume_z_60", Kind.VOLUME_Z, 60),
)

FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURE_SPECS)

# Rows the last-row evaluator needs; row LOOKBACK_BARS - 1 is the first row of
# ``batch_features`` with no NaN.
LOOKBACK_BARS: int = max(spec.bars_needed for spec in FEATURE_SPECS)


def _check_candles(candles: np.ndarray) -> np.ndarray:
    arr = np.asarray(candles, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 6:
        raise ValueError(f"candles must be an (N, 6) array, got shape {arr.shape}")
    return arr


def _rolling(x: np.ndarray, w: int, stat: str, ddof: int = 0) -> np.ndarray:
    """Rolling mean/std/zscore over windows of ``w`` rows ending at each row; NaN before.

    Each window is computed on its own, two-pass, exactly as ``latest_features``
    does it. (pandas' online rolling variance carries rounding residue from values
    that already left the window, e.g. 3e-11 instead of 0 after a volatile stretch.)
    """
    out = np.full(len(x), np.nan)
    if len(x) < w:
        return out
    windows = sliding_window_view(x, w)
    for start in range(0, len(windows), _CHUNK):
        win = windows[start : start + _CHUNK]
        if stat == "mean":
            res = win.mean(axis=1)
        elif stat == "std":
            d = win - win.mean(axis=1, keepdims=True)
            res = np.sqrt((d * d).sum(axis=1) / (w - ddof))
        elif stat == "zscore":  # of the window's last value, population std; 0 if flat
            m = win.mean(axis=1)
            d = win - m[:, None]
            res = (win[:, -1] - m) / np.sqrt((d * d).sum(axis=1) / w)
            res[win.max(axis=1) == win.min(axis=1)] = 0.0
        else:  # pragma: no cover
            raise ValueError(stat)
        out[w - 1 + start : w - 1 + start + len(win)] = res
    return out


def batch_features(candles: np.ndarray) -> pd.DataFrame:
    """Features for every candle: one row per candle, columns ``FEATURE_NAMES``.

    Rows with too little history for a feature hold NaN in that column.
    """
    arr = _check_candles(candles)
    open_ = arr[:, OPEN]
    high = arr[:, HIGH]
    low = arr[:, LOW]
    close = arr[:, CLOSE]
    volume = arr[:, VOLUME]
    columns: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        ret_1 = _log_return(close, 1)
        for spec in FEATURE_SPECS:
            w = spec.window
            if spec.kind is Kind.LOG_RETURN:
                col = _log_return(close, w)
            elif spec.kind is Kind.VOLATILITY:
                col = _rolling(ret_1, w, "std", ddof=1)
            elif spec.kind is Kind.CLOSE_VS_MEAN:
                col = close / _rolling(close, w, "mean") - 1.0
            elif spec.kind is Kind.HL_RANGE:
                col = (high - low) / close
            elif spec.kind is Kind.BODY:
                col = (close - open_) / open_
            elif spec.kind is Kind.VOLUME_Z:
                col = _rolling(volume, w, "zscore")
            else:  # pragma: no cover - exhaustive over Kind
                raise AssertionError(spec.kind)
            columns[spec.name] = col
    return pd.DataFrame(columns, columns=list(FEATURE_NAMES))


def _log_return(close: np.ndarray, w: int) -> np.ndarray:
    out = np.full(len(close), np.nan)
    if len(close) > w:
        out[w:] = np.log(close[w:] / close[:-w])
    return out


def latest_features(candles: np.ndarray) -> np.ndarray:
    """Features of the last candle, from only the last ``LOOKBACK_BARS`` rows.

    Equals ``batch_features(candles).iloc[-1]`` to floating-point rounding.
    """
    arr = _check_candles(candles)
    n = arr.shape[0]
    if n < LOOKBACK_BARS:
        raise ValueError(f"need at least {LOOKBACK_BARS} candles, got {n}")
    tail = arr[n - LOOKBACK_BARS :]
    close = tail[:, CLOSE]
    volume = tail[:, VOLUME]
    last = tail[-1]
    c = float(last[CLOSE])
    out = np.empty(len(FEATURE_SPECS), dtype=np.float64)
    # Reductions call the ufuncs that ndarray.mean/sum/max/min call (the same numbers,
    # bit for bit) without those methods' Python wrappers: the trader computes this for
    # every symbol at every candle, and the wrappers were a third of its cost.
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = np.log(close[1:] / close[:-1])
        for i, spec in enumerate(FEATURE_SPECS):
            w = spec.window
            if spec.kind is Kind.LOG_RETURN:
                out[i] = np.log(c / close[-1 - w])
            elif spec.kind is Kind.VOLATILITY:
                r = rets[-w:]
                d = r - _sum(r) / len(r)
                out[i] = math.sqrt(float(_sum(d * d)) / (w - 1)) if w > 1 else math.nan
            elif spec.kind is Kind.CLOSE_VS_MEAN:
                window = close[-w:]
                out[i] = c / (_sum(window) / len(window)) - 1.0
            elif spec.kind is Kind.HL_RANGE:
                out[i] = (last[HIGH] - last[LOW]) / c
            elif spec.kind is Kind.BODY:
                out[i] = (c - last[OPEN]) / last[OPEN]
            elif spec.kind is Kind.VOLUME_Z:
                v = volume[-w:]
                if _max(v) == _min(v):
                    out[i] = 0.0
                else:
                    m = _sum(v) / len(v)
                    d = v - m
                    out[i] = (v[-1] - m) / math.sqrt(float(_sum(d * d)) / w)
            else:  # pragma: no cover - exhaustive over Kind
                raise AssertionError(spec.kind)
    return out


_sum = np.add.reduce
_max = np.maximum.reduce
_min = np.minimum.reduce


def round_trip_cost(fee_rate: float, slippage_bps: float) -> float:
    """What buying and then selling costs, as a fraction of the stake.

    Each of the two fills pays the fee and the slippage (the paper exchange and
    the walk-forward evaluation fill buys higher and sells lower by
    ``slippage_bps``): 2 x (0.1 % + 5 bps) = 0.3 % with the default settings.
    """
    return 2.0 * (fee_rate + slippage_bps / 10_000.0)


def make_labels(candles: np.ndarray, horizon_bars: int, threshold: float) -> pd.Series:
    """1.0 if close[t + horizon] / close[t] - 1 > threshold else 0.0.

    Training passes ``round_trip_cost(...) + training.label_margin`` as the
    threshold: label 1 means "a trade entered now and left ``horizon_bars``
    later beats its costs". The last ``horizon_bars`` rows have no future and
    are NaN; the label at row t reads no candle after t + horizon_bars.
    """
    if horizon_bars < 1:
        raise ValueError(f"horizon_bars must be >= 1, got {horizon_bars}")
    arr = _check_candles(candles)
    close = pd.Series(arr[:, CLOSE])
    future = close.shift(-horizon_bars)
    with np.errstate(divide="ignore", invalid="ignore"):
        up = (future / close - 1.0) > threshold
    return up.astype(np.float64).where(future.notna() & close.notna())
