"""A complete strategy plug-in: a logistic regression on four features.

Select it in settings.yaml (docs/strategies.md walks through it)::

    training:
      strategy: examples.logistic:strategy

One feature definition, two evaluators that must agree: ``batch`` computes every
row at once for training, ``latest`` computes only the newest row for the trader.
``models.strategy.load_strategy`` compares them before the strategy is used and
refuses it, naming the first differing column, if they disagree.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from models.strategy import Strategy

CLOSE = 4  # candle columns: time_ms, open, high, low, close, volume
FEATURES = ("ret_1", "ret_5", "ret_15", "vol_15")
# ret_15 needs 16 closes; vol_15, the std of the last 15 one-candle returns, needs 16 too
LOOKBACK = 16


def batch(candles: np.ndarray) -> np.ndarray:
    """One row per candle; NaN where a row has too little history."""
    log_close = np.log(candles[:, CLOSE])
    out = np.full((len(candles), len(FEATURES)), np.nan)
    for col, w in enumerate((1, 5, 15)):
        out[w:, col] = log_close[w:] - log_close[:-w]
    if len(candles) >= LOOKBACK:
        out[LOOKBACK - 1 :, 3] = sliding_window_view(out[1:, 0], 15).std(axis=1, ddof=1)
    return out


def latest(candles: np.ndarray) -> np.ndarray:
    """The newest row only, from the last LOOKBACK candles."""
    log_close = np.log(candles[-LOOKBACK:, CLOSE])
    rets = np.diff(log_close)
    return np.array(
        [
            log_close[-1] - log_close[-2],
            log_close[-1] - log_close[-6],
            log_close[-1] - log_close[-16],
            rets.std(ddof=1),
        ]
    )


def estimator(max_iter: int) -> Pipeline:
    # max_iter is the boosting budget of the default strategy; a logistic regression
    # converges on its own terms, so only the floor of its solver's budget follows it.
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=max(200, max_iter)))


def strategy() -> Strategy:
    return Strategy(
        feature_names=FEATURES,
        lookback_bars=LOOKBACK,
        batch_features=batch,
        latest_features=latest,
        make_estimator=estimator,
    )
