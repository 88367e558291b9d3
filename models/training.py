"""One training job: features, cost-aware labels, walk-forward validation that trades
its folds, the promotion gate, final fit, staging.

The label asks whether a trade entered now and left ``horizon_bars`` later beats
its round trip's cost plus ``label_margin``. Each walk-forward fold trades its
out-of-sample block with the trader's own ``decide()`` (``models/evaluation.py``);
``promotion_gate`` turns the folds into ``TrainResult.promoted`` and
``gate_reasons``. The features and the estimator come from the strategy named in
``TrainParams.strategy`` (``models/strategy.py``).

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
from sklearn.metrics import accuracy_score, precision_score, roc_auc_score
from threadpoolctl import threadpool_limits

from config.settings import (
    ExchangeSettings,
    PromotionSettings,
    Settings,
    TradingSettings,
    TrainingSettings,
)
from core.timeframes import timeframe_s
from models import artifacts
from models.decision import RiskLimits, limits_of
from models.evaluation import (
    BlockTrading,
    FoldResult,
    Gate,
    TradingReport,
    promotion_gate,
    summarize,
    trade_block,
)
from models.features import TIME, make_labels, round_trip_cost
from models.strategy import Strategy, StrategyError, load_strategy

# Fewer boosting iterations in the validation folds than in the final fit keeps
# a whole job at about twice the cost of the final fit.
FOLD_ITER_DIVISOR = 3
MIN_FOLD_ITER = 10

# The settings are the one source of every default below.
_TRAINING = TrainingSettings()
_TRADING = TradingSettings()
_EXCHANGE = ExchangeSettings()
_PROMOTION = PromotionSettings()


class TrainParams(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one job needs, flat because it is stored in the manifest as ``params``.

    The defaults are the settings' defaults; ``from_settings`` builds the bot's.
    The trading fields are there because every fold trades its block with the
    trader's rules (``decide()``), fees and slippage.
    """

    horizon_bars: int = _TRAINING.horizon_bars
    label_margin: float = _TRAINING.label_margin
    max_iter: int = _TRAINING.max_iter
    strategy: str = _TRAINING.strategy
    fee_rate: float = _EXCHANGE.fee_rate
    slippage_bps: float = _EXCHANGE.slippage_bps
    stop_loss_pct: float = _TRADING.stop_loss_pct
    entry_threshold: float = _TRADING.entry_threshold
    exit_threshold: float = _TRADING.exit_threshold
    min_hold_bars: int = _TRADING.min_hold_bars
    cooldown_bars: int = _TRADING.cooldown_bars
    max_hold_bars: int = _TRADING.max_hold_bars
    min_net_return_pct: float = _PROMOTION.min_net_return_pct
    min_auc: float = _PROMOTION.min_auc
    walk_forward_folds: int = 3
    min_rows: int = 2000

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainParams:
        t, tr, ex, pr = settings.training, settings.trading, settings.exchange, settings.promotion
        return cls(
            horizon_bars=t.horizon_bars,
            label_margin=t.label_margin,
            max_iter=t.max_iter,
            strategy=t.strategy,
            fee_rate=ex.fee_rate,
            slippage_bps=ex.slippage_bps,
            stop_loss_pct=tr.stop_loss_pct,
            entry_threshold=tr.entry_threshold,
            exit_threshold=tr.exit_threshold,
            min_hold_bars=tr.min_hold_bars,
            cooldown_bars=tr.cooldown_bars,
            max_hold_bars=tr.max_hold_bars,
            min_net_return_pct=pr.min_net_return_pct,
            min_auc=pr.min_auc,
        )

    @property
    def label_threshold(self) -> float:
        """The forward return a label 1 must beat: the round trip's cost plus the margin."""
        return round_trip_cost(self.fee_rate, self.slippage_bps) + self.label_margin

    def limits(self, bar_s: float) -> RiskLimits:
        """The trader's rules for one symbol (the stake is the block's whole equity)."""
        return limits_of(self, bar_s=bar_s, stake_quote=1.0, max_open_positions=1)


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
    promoted: bool = True
    gate_reasons: tuple[str, ...] = ()


class TrainingError(Exception):
    """The job cannot produce a useful model; the message names the symbol."""


class UntrainableError(TrainingError):
    """The symbol's data cannot give a model at all (its labels have one class: a flat
    stablecoin): trying again on more of the same data fails the same way."""


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


def _prob_up(model: Any, X: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_proba(X)[:, list(model.classes_).index(1)], dtype=np.float64)


@dataclass(frozen=True)
class Prepared:
    """A job's candles turned into what the fits need."""

    candles: np.ndarray
    X: np.ndarray  # features of the usable rows (complete features and a label)
    y: np.ndarray  # their labels, 0/1
    rows: np.ndarray  # their candle indexes
    strategy: Strategy
    bar_s: float


@dataclass(frozen=True)
class FoldPrediction:
    """One walk-forward fold: its block of candles and its model's P(up) on them."""

    candles: np.ndarray  # the block, from its first to its last labelled candle
    prob_up: np.ndarray  # per candle of the block; NaN where the features are incomplete
    y: np.ndarray  # labels of the block's usable rows
    proba: np.ndarray  # P(up) of those rows


def prepare(symbol: str, candles: np.ndarray, timeframe: str, params: TrainParams) -> Prepared:
    """Features and cost-aware labels of ``candles``; raises ``TrainingError``."""
    try:
        strategy = load_strategy(params.strategy)
        bar_s = float(timeframe_s(timeframe))
        X_all = strategy.batch_matrix(candles)
    except (StrategyError, ValueError) as e:
        raise TrainingError(f"{symbol}: {e}") from e
    y_all = make_labels(candles, params.horizon_bars, params.label_threshold).to_numpy()
    usable = np.isfinite(X_all).all(axis=1) & np.isfinite(y_all)
    rows = int(usable.sum())
    if rows < params.min_rows:
        raise TrainingError(f"{symbol}: {rows} usable rows < {params.min_rows} minimum")
    y = y_all[usable].astype(np.int64)
    neg, pos = _class_counts(y)
    if neg == 0 or pos == 0:
        raise UntrainableError(
            f"{symbol}: labels have a single class (all {1 if pos else 0}) over {rows:,} rows "
            f"(label: return over {params.horizon_bars} candles > "
            f"{100 * params.label_threshold:.2f} %); nothing to learn"
        )
    return Prepared(
        candles=candles,
        X=np.ascontiguousarray(X_all[usable]),
        y=y,
        rows=np.flatnonzero(usable),
        strategy=strategy,
        bar_s=bar_s,
    )


def fold_predictions(data: Prepared, params: TrainParams) -> list[FoldPrediction]:
    """Expanding-window validation: fold k trains on blocks 0..k-1, predicts block k.

    The last ``horizon_bars`` training rows are dropped (embargo) because their
    labels look into the test block, so a fold's model saw nothing of its block
    nor of any later candle. Folds whose training rows have a single class are skipped.
    """
    X, y, rows = data.X, data.y, data.rows
    k = params.walk_forward_folds
    bounds = np.linspace(0, len(y), k + 2).astype(int)
    fold_iter = max(MIN_FOLD_ITER, params.max_iter // FOLD_ITER_DIVISOR)
    folds: list[FoldPrediction] = []
    for i in range(1, k + 1):
        train_end = bounds[i] - params.horizon_bars
        test = slice(bounds[i], bounds[i + 1])
        y_train, y_test = y[:train_end], y[test]
        if train_end <= 0 or len(y_test) < 2 or min(_class_counts(y_train)) == 0:
            continue
        model = data.strategy.make_estimator(fold_iter).fit(X[:train_end], y_train)
        proba = _prob_up(model, X[test])
        first, last = int(rows[test.start]), int(rows[test.stop - 1])
        block_prob = np.full(last + 1 - first, np.nan)
        block_prob[rows[test] - first] = proba
        folds.append(FoldPrediction(data.candles[first : last + 1], block_prob, y_test, proba))
    return folds


def evaluate(
    symbol: str, folds: list[FoldPrediction], params: TrainParams, bar_s: float
) -> tuple[dict[str, float], TradingReport]:
    """Score each fold (classification beside its baselines) and trade its block with
    ``decide()``; the flat metrics and the manifest's ``trading`` report."""
    limits = params.limits(bar_s)
    results: list[FoldResult] = []
    prec: list[float] = []
    pred_rate: list[float] = []
    for fold in folds:
        pred = (fold.proba > 0.5).astype(np.int64)
        positives = float(fold.y.mean())
        trading: BlockTrading = trade_block(
            fold.candles, fold.prob_up, limits, params.fee_rate, params.slippage_bps
        )
        both = min(_class_counts(fold.y)) > 0
        results.append(
            FoldResult(
                start_ms=int(fold.candles[0, TIME]),
                end_ms=int(fold.candles[-1, TIME]),
                rows=len(fold.y),
                accuracy=float(accuracy_score(fold.y, pred)),
                majority_accuracy=max(positives, 1.0 - positives),
                auc=float(roc_auc_score(fold.y, fold.proba)) if both else None,
                trading=trading,
            )
        )
        prec.append(float(precision_score(fold.y, pred, zero_division=0)))
        pred_rate.append(float(pred.mean()))
    if not any(f.auc is not None for f in results):
        n = sum(len(f.y) for f in folds)
        raise TrainingError(
            f"{symbol}: walk-forward validation found no fold with both classes "
            f"over {n} rows; too few positive or negative labels"
        )
    report = summarize(
        results,
        min_net_return_pct=params.min_net_return_pct,
        fee_rate=params.fee_rate,
        slippage_bps=params.slippage_bps,
    )
    metrics = {
        "accuracy": report.accuracy,
        "auc": report.auc,
        "precision": float(np.mean(prec)),
        "positive_rate": float(np.mean([f.y.mean() for f in folds])),  # label 1 in the blocks
        "predicted_positive_rate": float(np.mean(pred_rate)),
        "baseline_accuracy": report.majority_accuracy,  # always predicting the majority
        "folds": float(len(results)),
        "label_threshold": params.label_threshold,
        # trading the blocks with decide(), after fees and slippage, in % of the stake
        "net_return_pct": report.net_return_pct,
        "positive_folds": float(report.positive_folds),
        "buy_hold_pct": report.buy_hold_pct,
        "round_trips": float(report.round_trips),
        "win_rate": report.win_rate,
        "max_drawdown_pct": report.max_drawdown_pct,
        "exposure_pct": report.exposure_pct,
        "fees_pct": report.fees_pct,
        "trades_per_day": report.trades_per_day,
    }
    return metrics, report


def run_training(job: TrainJob) -> TrainResult:
    """Train one symbol's model, judge it by trading its walk-forward folds, and stage it.

    The model is written to ``job.staging_dir`` whether or not it passes the
    promotion gate; the result (and the manifest's ``gate``) say which and why.
    Raises ``TrainingError`` when the data cannot give a useful model (too few
    rows, a single label class, malformed candles, a broken strategy) and
    ``ArtifactError`` when the staging folder cannot be written.
    """
    started = time.perf_counter()
    symbol, params = job.symbol, job.params
    candles = _check_job(job)
    data = prepare(symbol, candles, job.timeframe, params)
    # One OpenMP thread for the fits, whichever thread or process runs the job:
    # with every core busy, a multi-threaded fit's OpenMP barriers wait on
    # descheduled threads and a 0.3 s job can take minutes. (OpenMP limits are
    # per thread; a process worker is also capped for its lifetime.)
    with threadpool_limits(limits=max(1, job.threads), user_api="openmp"):
        metrics, report = evaluate(symbol, fold_predictions(data, params), params, data.bar_s)
        estimator = data.strategy.make_estimator(params.max_iter).fit(data.X, data.y)
    gate: Gate = promotion_gate(
        report, min_net_return_pct=params.min_net_return_pct, min_auc=params.min_auc
    )
    rows = len(data.y)
    strategy = data.strategy

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
        strategy=strategy.name,
        feature_names=strategy.feature_names,
        trading=report,
        gate=gate,
    )
    return TrainResult(
        symbol=symbol,
        staging_dir=str(job.staging_dir),
        rows=rows,
        window_start_ms=window_start_ms,
        window_end_ms=window_end_ms,
        metrics=metrics,
        fit_seconds=time.perf_counter() - started,
        promoted=gate.promoted,
        gate_reasons=tuple(gate.reasons),
    )
