"""One training job: features, labels, walk-forward validation, final fit, staging.

``run_training`` is a pure function of its ``TrainJob`` (plus the clock for
``trained_at_ms`` and ``fit_seconds``) so it can run in a worker process: the
candles arrive as a numpy array, the fitted model is written to the job's
staging folder, and only the small ``TrainResult`` travels back. It prints
nothing. The model store publishes the staging folder afterwards.

This module is preloaded by the training pool's forkserver, so importing it
imports pandas and scikit-learn.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, precision_score, roc_auc_score
from threadpoolctl import threadpool_limits

from models import artifacts
from models.features import TIME, batch_features, make_labels

RANDOM_STATE = 0
# Fewer boosting iterations in the validation folds than in the final fit keeps
# a whole job at about twice the cost of the final fit.
FOLD_ITER_DIVISOR = 3
MIN_FOLD_ITER = 10


class TrainParams(msgspec.Struct, frozen=True):
    horizon_bars: int = 15
    label_threshold: float = 0.0005
    max_iter: int = 100
    max_leaf_nodes: int = 31
    learning_rate: float = 0.1
    walk_forward_folds: int = 3
    min_rows: int = 2000


@dataclass(frozen=True)
class TrainJob:
    symbol: str
    timeframe: str
    candles: np.ndarray  # (N, 6) float64: time_ms, open, high, low, close, volume
    staging_dir: str
    params: TrainParams
    # The bot's clock when the job was made (virtual in simulations); None: the
    # newest candle's open time. Never the worker's wall clock.
    trained_at_ms: int | None = None
    threads: int = 1  # OpenMP threads of the fits (a Dask worker may give a fit more than one)


class TrainResult(msgspec.Struct, frozen=True):
    symbol: str
    staging_dir: str
    rows: int  # labelled rows with complete features, all used by the final fit
    window_start_ms: int  # time of the first candle of the job
    window_end_ms: int  # time of the last candle of the job
    metrics: dict[str, float]
    fit_seconds: float  # wall time of the whole job


class TrainingError(Exception):
    """The job cannot produce a useful model; the message names the symbol."""


def _estimator(params: TrainParams, max_iter: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=max_iter,
        max_leaf_nodes=params.max_leaf_nodes,
        learning_rate=params.learning_rate,
        # A random validation split would leak the future into the past and make
        # the cost vary; validation is walk-forward instead.
        early_stopping=False,
        random_state=RANDOM_STATE,
    )


def _check_job(job: TrainJob) -> np.ndarray:
    sym, p = job.symbol, job.params
    candles = np.asarray(job.candles, dtype=np.float64)
    if candles.ndim != 2 or candles.shape[1] != 6:
        raise TrainingError(f"{sym}: candles must be an (N, 6) array, got shape {candles.shape}")
    if p.horizon_bars < 1:
        raise TrainingError(f"{sym}: horizon_bars must be >= 1, got {p.horizon_bars}")
    if p.walk_forward_folds < 1:
        raise TrainingError(f"{sym}: walk_forward_folds must be >= 1, got {p.walk_forward_folds}")
    if p.max_iter < 1:
        raise TrainingError(f"{sym}: max_iter must be >= 1, got {p.max_iter}")
    if candles.shape[0] == 0:
        raise TrainingError(f"{sym}: no candles")
    times = candles[:, TIME]
    if not np.isfinite(times).all() or (np.diff(times) <= 0).any():
        raise TrainingError(f"{sym}: candle times are not strictly increasing")
    return candles


def _class_counts(y: np.ndarray) -> tuple[int, int]:
    pos = int(y.sum())
    return len(y) - pos, pos


def _walk_forward(
    symbol: str, X: np.ndarray, y: np.ndarray, params: TrainParams
) -> dict[str, float]:
    """Expanding-window validation: fold k trains on blocks 0..k-1, tests on block k.

    The last ``horizon_bars`` training rows are dropped (embargo) because their
    labels look into the test block.
    """
    n = len(y)
    k = params.walk_forward_folds
    bounds = np.linspace(0, n, k + 2).astype(int)
    fold_iter = max(MIN_FOLD_ITER, params.max_iter // FOLD_ITER_DIVISOR)
    acc: list[float] = []
    auc: list[float] = []
    prec: list[float] = []
    pos_rate: list[float] = []
    pred_rate: list[float] = []
    for i in range(1, k + 1):
        train_end = bounds[i] - params.horizon_bars
        test = slice(bounds[i], bounds[i + 1])
        y_train, y_test = y[:train_end], y[test]
        if train_end <= 0 or len(y_test) == 0 or min(_class_counts(y_train)) == 0:
            continue
        model = _estimator(params, fold_iter).fit(X[:train_end], y_train)
        proba = model.predict_proba(X[test])[:, list(model.classes_).index(1)]
        pred = (proba > 0.5).astype(np.int64)
        acc.append(float(accuracy_score(y_test, pred)))
        prec.append(float(precision_score(y_test, pred, zero_division=0)))
        pos_rate.append(float(y_test.mean()))
        pred_rate.append(float(pred.mean()))
        if min(_class_counts(y_test)) > 0:
            auc.append(float(roc_auc_score(y_test, proba)))
    if not acc or not auc:
        raise TrainingError(
            f"{symbol}: walk-forward validation found no fold with both classes "
            f"over {n} rows; too few {'positive' if y.mean() < 0.5 else 'negative'} labels"
        )
    mean_pos = float(np.mean(pos_rate))
    return {
        "accuracy": float(np.mean(acc)),
        "auc": float(np.mean(auc)),
        "precision": float(np.mean(prec)),
        "positive_rate": mean_pos,  # share of label 1 in the test blocks
        "predicted_positive_rate": float(np.mean(pred_rate)),
        "baseline_accuracy": max(mean_pos, 1.0 - mean_pos),  # always predicting the majority
        "folds": float(len(acc)),
    }


def run_training(job: TrainJob) -> TrainResult:
    """Train one symbol's model and write it to ``job.staging_dir``.

    Raises ``TrainingError`` when the data cannot give a useful model (too few
    rows, a single label class, malformed candles) and ``ArtifactError`` when the
    staging folder cannot be written.
    """
    started = time.perf_counter()
    symbol, params = job.symbol, job.params
    candles = _check_job(job)

    X_all = batch_features(candles).to_numpy(dtype=np.float64)
    y_all = make_labels(candles, params.horizon_bars, params.label_threshold).to_numpy()
    usable = np.isfinite(X_all).all(axis=1) & np.isfinite(y_all)
    rows = int(usable.sum())
    if rows < params.min_rows:
        raise TrainingError(f"{symbol}: {rows} usable rows < {params.min_rows} minimum")
    X = np.ascontiguousarray(X_all[usable])
    y = y_all[usable].astype(np.int64)
    neg, pos = _class_counts(y)
    if neg == 0 or pos == 0:
        raise TrainingError(
            f"{symbol}: labels have a single class (all {1 if pos else 0}) over {rows} rows; "
            "nothing to learn"
        )

    # One OpenMP thread for the fits, whichever thread or process runs the job:
    # with every core busy, a multi-threaded fit's OpenMP barriers wait on
    # descheduled threads and a 0.3 s job can take minutes. (OpenMP limits are
    # per thread; a process worker is also capped for its lifetime.)
    with threadpool_limits(limits=max(1, job.threads), user_api="openmp"):
        metrics = _walk_forward(symbol, X, y, params)
        estimator = _estimator(params, params.max_iter).fit(X, y)

    window_start_ms = int(candles[0, TIME])
    window_end_ms = int(candles[-1, TIME])
    param_dict: dict[str, Any] = msgspec.structs.asdict(params)
    artifacts.write_staging(
        job.staging_dir,
        estimator,
        symbol=symbol,
        timeframe=job.timeframe,
        window_start_ms=window_start_ms,
        window_end_ms=window_end_ms,
        trained_at_ms=window_end_ms if job.trained_at_ms is None else job.trained_at_ms,
        rows=rows,
        metrics=metrics,
        params=param_dict,
    )
    return TrainResult(
        symbol=symbol,
        staging_dir=str(job.staging_dir),
        rows=rows,
        window_start_ms=window_start_ms,
        window_end_ms=window_end_ms,
        metrics=metrics,
        fit_seconds=time.perf_counter() - started,
    )
