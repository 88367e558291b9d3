"""The model plug-in point: which features, and which estimator, a symbol's model uses.

A strategy is named in the settings as ``module:function`` (``training.strategy``,
default ``models.strategy:hist_gradient_boosting``). The function takes no
argument and returns a ``Strategy``:

* ``feature_names`` and ``lookback_bars`` (rows the latest-row evaluator needs);
* ``batch_features(candles)`` -- one row of features per candle, for training;
* ``latest_features(candles)`` -- the features of the last candle only, for the
  trader on every tick; it must equal the last row of ``batch_features``;
* ``make_estimator(max_iter)`` -- a fresh, unfitted scikit-learn style
  classifier (``fit``, ``predict_proba``, ``classes_``). ``max_iter`` is the
  training budget (``training.max_iter`` for the final fit, a third of it in
  the walk-forward folds); an estimator without one may ignore it.

``load_strategy`` imports the function, calls it and checks the strategy before
anything uses it: a plug-in whose batch and latest-row features disagree is
refused with the first differing column, because a model trained on one and
traded on the other would trade on numbers it never saw. Training workers load
it by name for each job; the trader loads the one named in each model's
manifest, so a model is always traded with the features it was trained on.
See docs/strategies.md for a complete plug-in.
"""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from models import features
from models.synthetic import random_walk_candles

DEFAULT_STRATEGY = "models.strategy:hist_gradient_boosting"
RANDOM_STATE = 0
# Candles after the lookback on which load_strategy compares the two evaluators.
_CHECK_ROWS = 120


class StrategyError(Exception):
    """A strategy cannot be imported or breaks its contract; the message names it."""


@dataclass(frozen=True)
class Strategy:
    feature_names: tuple[str, ...]
    lookback_bars: int
    batch_features: Callable[[np.ndarray], pd.DataFrame | np.ndarray]
    latest_features: Callable[[np.ndarray], np.ndarray]
    make_estimator: Callable[[int], Any]
    name: str = ""  # the ``module:function`` it was loaded from; set by load_strategy

    def batch_matrix(self, candles: np.ndarray) -> np.ndarray:
        """``batch_features`` as a float64 (N, len(feature_names)) array."""
        x = self.batch_features(candles)
        arr = np.asarray(x.to_numpy() if isinstance(x, pd.DataFrame) else x, dtype=np.float64)
        if arr.shape != (len(candles), len(self.feature_names)):
            raise StrategyError(
                f"strategy {self.name}: batch_features gave shape {arr.shape}, expected "
                f"{(len(candles), len(self.feature_names))} (one row per candle, one column "
                "per feature name)"
            )
        return arr


def hist_gradient_boosting() -> Strategy:
    """The built-in strategy: ``models.features`` and a HistGradientBoosting classifier."""
    return Strategy(
        feature_names=features.FEATURE_NAMES,
        lookback_bars=features.LOOKBACK_BARS,
        batch_features=features.batch_features,
        latest_features=features.latest_features,
        make_estimator=_hist_gradient_boosting,
    )


def _hist_gradient_boosting(max_iter: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=max_iter,
        max_leaf_nodes=31,
        learning_rate=0.1,
        # A random validation split would leak the future into the past and make
        # the cost vary; validation is walk-forward instead.
        early_stopping=False,
        random_state=RANDOM_STATE,
    )


_loaded: dict[str, Strategy] = {}
_lock = threading.Lock()


def load_strategy(spec: str) -> Strategy:
    """Import, build and check the strategy ``spec`` (``module:function``); cached per spec.

    Raises ``StrategyError`` naming the spec when the import fails, the function
    does not return a ``Strategy``, or its batch and latest-row features differ.
    """
    with _lock:
        cached = _loaded.get(spec)
    if cached is not None:
        return cached
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise StrategyError(f"strategy {spec!r}: expected 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise StrategyError(f"strategy {spec}: cannot import {module_name}: {e}") from e
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise StrategyError(f"strategy {spec}: {module_name} has no function {func_name}")
    try:
        built = factory()
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
        raise StrategyError(f"strategy {spec}: {func_name}() failed: {error}") from e
    if not isinstance(built, Strategy):
        raise StrategyError(
            f"strategy {spec}: {func_name}() returned {type(built).__name__}, not a Strategy"
        )
    strategy = Strategy(
        feature_names=tuple(built.feature_names),
        lookback_bars=int(built.lookback_bars),
        batch_features=built.batch_features,
        latest_features=built.latest_features,
        make_estimator=built.make_estimator,
        name=spec,
    )
    check_agreement(strategy)
    with _lock:
        _loaded.setdefault(spec, strategy)
    return strategy


def check_agreement(strategy: Strategy, candles: np.ndarray | None = None) -> None:
    """Raise ``StrategyError`` unless ``latest_features`` equals the last row of the batch.

    Compared on a seeded random walk (or ``candles``) at every row from the
    lookback on; the message names the first differing column and both values.
    """
    name = strategy.name or "(unnamed)"
    if not strategy.feature_names or len(set(strategy.feature_names)) != len(
        strategy.feature_names
    ):
        raise StrategyError(f"strategy {name}: feature names must be distinct and not empty")
    if strategy.lookback_bars < 1:
        raise StrategyError(f"strategy {name}: lookback_bars must be >= 1")
    if candles is None:
        candles = random_walk_candles(strategy.lookback_bars + _CHECK_ROWS, seed=12345)
    batch = strategy.batch_matrix(candles)
    for end in range(strategy.lookback_bars, len(candles) + 1):
        latest = np.asarray(strategy.latest_features(candles[:end]), dtype=np.float64)
        if latest.shape != (len(strategy.feature_names),):
            raise StrategyError(
                f"strategy {name}: latest_features gave shape {latest.shape}, expected "
                f"({len(strategy.feature_names)},)"
            )
        row = batch[end - 1]
        for col, (a, b) in enumerate(zip(latest.tolist(), row.tolist(), strict=True)):
            if not _same(a, b):
                raise StrategyError(
                    f"strategy {name}: batch and latest-row features disagree: first differing "
                    f"column {strategy.feature_names[col]!r} at row {end - 1}: latest {a!r}, "
                    f"batch {b!r}"
                )


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
