"""The compiled forest gives P(up) exactly as predict_proba does, or is not used."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from sklearn._loss.loss import HalfBinomialLoss
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from models import artifacts
from models.features import batch_features, make_labels
from models.forest import compile_forest, forest_of
from models.synthetic import random_walk_candles


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread():
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """Features and labels with some values missing, so that the trees learn where NaN goes."""
    candles = random_walk_candles(3000, seed=7, momentum=0.3)
    X = batch_features(candles).to_numpy()
    y = make_labels(candles, 2, 0.0).to_numpy()
    ok = np.isfinite(y)
    X, y = X[ok], y[ok].astype(int)
    X[np.random.default_rng(3).random(X.shape) < 0.03] = np.nan
    return X, y


def rows_to_ask(X: np.ndarray) -> np.ndarray:
    """The training rows, and the same with values missing or infinite (the trader turns
    inf into NaN), as the trader would ask them."""
    rng = np.random.default_rng(11)
    holes = X[:500].copy()
    holes[rng.random(holes.shape) < 0.2] = np.nan
    infinite = X[500:700].copy()
    infinite[rng.random(infinite.shape) < 0.2] = np.inf
    return np.concatenate([X, holes, infinite])


def loaded(tmp_path: Path, estimator) -> artifacts.LoadedModel:
    """Published and loaded as the model store does (which compiles the forest)."""
    staging = artifacts.new_staging_dir(tmp_path)
    artifacts.write_staging(
        staging,
        estimator,
        symbol="BTC/USDT",
        timeframe="1m",
        window_start_ms=0,
        window_end_ms=1,
        trained_at_ms=2,
        rows=3,
        metrics={},
        params={},
    )
    manifest = artifacts.publish(tmp_path, staging)
    return artifacts.load_version(tmp_path / manifest.version)


@pytest.mark.parametrize("max_iter", [10, 60])
def test_prob_up_is_predict_proba_to_the_bit(tmp_path: Path, data, max_iter: int) -> None:
    X, y = data
    estimator = HistGradientBoostingClassifier(max_iter=max_iter, random_state=0).fit(X, y)
    model = loaded(tmp_path, estimator)
    assert forest_of(model.estimator) is not None  # the fast path is the one tested
    rows = rows_to_ask(X)
    expected = model.estimator.predict_proba(np.where(np.isfinite(rows), rows, np.nan))[:, 1]
    got = np.array([model.prob_up(row) for row in rows])
    np.testing.assert_array_equal(got, expected)
    assert np.max(np.abs(got - expected)) <= 1e-12


def test_class_one_listed_first(data) -> None:
    """Labels 1 and 2: P(class 1) is the first column, 1 - expit(raw)."""
    X, y = data
    estimator = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y + 1)
    forest = forest_of(estimator)
    assert forest is not None and forest.class_index == 0
    expected = estimator.predict_proba(X[:300])[:, 0]
    np.testing.assert_array_equal([forest.prob(row) for row in X[:300]], expected)


def test_models_it_does_not_cover_use_predict_proba(data, caplog) -> None:
    X, y = data
    clean = np.nan_to_num(X)
    categorical = clean.copy()
    categorical[:, 0] = (np.arange(len(X)) % 4).astype(float)
    three_classes = y + (np.arange(len(y)) % 3 == 0)
    with caplog.at_level(logging.INFO, logger="models.forest"):
        assert compile_forest(LogisticRegression().fit(clean[:500], y[:500])) is None
        hgb = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0])
        assert compile_forest(hgb.fit(categorical, y), "ETH/USDT v000003") is None
        multi = HistGradientBoostingClassifier(max_iter=5).fit(X, three_classes)
        assert compile_forest(multi) is None
    assert "ETH/USDT v000003: P(up) from predict_proba" in caplog.text


class _OtherLink(HalfBinomialLoss):
    def predict_proba(self, raw_prediction: np.ndarray) -> np.ndarray:
        return super().predict_proba(raw_prediction * 1.000001)


def test_a_forest_that_disagrees_is_not_used(tmp_path: Path, data, caplog) -> None:
    """The probe rows catch a model whose predict_proba the forest does not reproduce (here
    another link function; in life, a scikit-learn whose internals moved)."""
    X, y = data
    estimator = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y)
    estimator._loss = _OtherLink()
    with caplog.at_level(logging.WARNING, logger="models.forest"):
        model = loaded(tmp_path, estimator)
    assert forest_of(model.estimator) is None
    assert "BTC/USDT v000001: the fast predictor differs from predict_proba" in caplog.text
    row = X[5]
    assert model.prob_up(row) == model.estimator.predict_proba(row.reshape(1, -1))[0, 1]
