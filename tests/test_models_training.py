from __future__ import annotations

import hashlib
import json
from pathlib import Path

import msgspec
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from config.settings import Settings
from core.timeframes import DAY_MS
from exchange.synthetic import SyntheticMarket
from models import artifacts
from models.features import FEATURE_NAMES, batch_features, latest_features
from models.strategy import DEFAULT_STRATEGY
from models.synthetic import random_walk_candles
from models.training import TrainingError, TrainJob, TrainParams, TrainResult, run_training

DAY = 1440
# Next-2-bar direction of an AR(1) walk with momentum 0.3 is learnable (AUC ~0.58); without
# costs (label: any rise), trading it on P(up) >= 0.55 / <= 0.45 pays.
LEARNABLE = TrainParams(
    horizon_bars=2,
    fee_rate=0.0,
    slippage_bps=0.0,
    label_margin=0.0,
    max_iter=30,
    entry_threshold=0.55,
    exit_threshold=0.45,
    min_hold_bars=0,
    cooldown_bars=0,
    max_hold_bars=0,
)


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread():
    # As in production: with every core busy, multi-threaded OpenMP fits crawl.
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def job(tmp_path: Path, candles: np.ndarray, params: TrainParams, symbol: str = "SYN/USDT"):
    staging = artifacts.new_staging_dir(tmp_path / "models")
    return TrainJob(symbol, "1m", candles, str(staging), params)


@pytest.fixture(scope="module")
def walk() -> np.ndarray:
    return random_walk_candles(7 * DAY, seed=1, momentum=0.3)


def test_run_training_writes_verifiable_staging(tmp_path: Path, walk: np.ndarray) -> None:
    j = job(tmp_path, walk, LEARNABLE)
    result = run_training(j)

    assert isinstance(result, TrainResult)
    assert result.symbol == "SYN/USDT"
    assert result.staging_dir == j.staging_dir
    assert result.window_start_ms == int(walk[0, 0])
    assert result.window_end_ms == int(walk[-1, 0])
    # Rows lost: 60 for the lookback at the start, 2 for the label horizon at the end.
    assert result.rows == len(walk) - 60 - 2
    assert result.fit_seconds > 0
    m = result.metrics
    for key in ("accuracy", "auc", "precision", "positive_rate", "folds"):
        assert key in m
    assert m["folds"] == 3.0
    assert 0.4 < m["positive_rate"] < 0.6
    # It learned the momentum, and nothing leaked from the future.
    assert 0.54 < m["auc"] < 0.75, m
    assert m["accuracy"] > m["baseline_accuracy"], m

    staging = Path(j.staging_dir)
    raw = json.loads((staging / "manifest.json").read_text())
    assert raw["version"] == ""
    assert raw["metrics"] == m
    assert raw["symbols"] == ["SYN/USDT"]
    assert raw["timeframe"] == "1m"
    assert raw["feature_names"] == list(FEATURE_NAMES)
    assert raw["rows"] == result.rows
    assert raw["params"]["horizon_bars"] == 2
    assert raw["params"] == msgspec.structs.asdict(LEARNABLE)
    assert raw["strategy"] == DEFAULT_STRATEGY
    # every fold traded its block; the figures and the verdict are in the manifest
    trading = raw["trading"]
    assert len(trading["folds"]) == 3
    assert trading["net_return_pct"] == pytest.approx(m["net_return_pct"])
    assert trading["round_trips"] == m["round_trips"] > 0
    assert trading["cash_return_pct"] == 0.0
    for fold in trading["folds"]:
        assert fold["start_ms"] < fold["end_ms"] and fold["majority_accuracy"] >= 0.5
        assert set(fold["trading"]) >= {"net_return_pct", "buy_hold_pct", "fees_pct", "win_rate"}
    assert raw["gate"] == {"promoted": result.promoted, "reasons": list(result.gate_reasons)}
    # with no costs the momentum pays: traded, and promoted
    assert result.promoted and m["net_return_pct"] > 0, result.gate_reasons
    assert set(raw["library_versions"]) >= {"sklearn", "numpy", "pandas"}
    digest = hashlib.sha256((staging / raw["model_file"]).read_bytes()).hexdigest()
    assert raw["sha256"] == digest

    loaded = artifacts.load_version(staging)
    p = loaded.prob_up(latest_features(walk))
    assert 0.0 < p < 1.0


def test_train_params_default_to_the_settings() -> None:
    # one source of truth: the settings; a training job of the bot gets exactly them
    assert TrainParams() == TrainParams.from_settings(Settings())
    assert TrainParams().horizon_bars == Settings().training.horizon_bars


def test_training_is_deterministic(tmp_path: Path, walk: np.ndarray) -> None:
    params = msgspec.structs.replace(LEARNABLE, max_iter=15)
    a = run_training(job(tmp_path, walk, params))
    b = run_training(job(tmp_path, walk, params))
    assert a.metrics == b.metrics
    model_a = artifacts.load_version(a.staging_dir).estimator
    model_b = artifacts.load_version(b.staging_dir).estimator
    x = batch_features(random_walk_candles(500, seed=9)).to_numpy()[-400:]
    np.testing.assert_array_equal(model_a.predict_proba(x), model_b.predict_proba(x))


def test_a_model_without_an_edge_after_costs_is_rejected_with_its_reasons(tmp_path: Path) -> None:
    # no momentum: nothing to learn, and every trade pays 2 x (0.1 % + 5 bps)
    candles = random_walk_candles(5 * DAY, seed=4, volatility=0.002)
    params = TrainParams(
        horizon_bars=10,
        label_margin=0.0,
        max_iter=20,
        entry_threshold=0.3,
        exit_threshold=0.2,
        min_hold_bars=0,
    )
    assert params.label_threshold == pytest.approx(0.003)  # the default costs' round trip
    result = run_training(job(tmp_path, candles, params))
    assert not result.promoted
    assert result.metrics["net_return_pct"] < 0 and result.metrics["round_trips"] > 0
    assert result.gate_reasons[0].startswith("walk-forward net return -")
    manifest = artifacts.read_manifest(result.staging_dir)
    assert manifest.gate is not None and not manifest.gate.promoted
    assert manifest.gate.reasons == list(result.gate_reasons)
    assert manifest.trading is not None and manifest.trading.fees_pct > 0


@pytest.mark.parametrize(
    ("symbol", "edge"), [("ETH/USDT", True), ("SOL/USDT", True), ("LINK/USDT", False)]
)
def test_the_default_market_has_an_edge_in_its_trending_symbols_only(
    tmp_path: Path, symbol: str, edge: bool
) -> None:
    # What a default run does at startup: the settings' window of the synthetic market up
    # to the anchor, the default strategy, rules, costs and gate. ETH's and SOL's trend
    # regimes pass out of sample; LINK (no trends) has nothing that beats the costs.
    settings = Settings()
    anchor = 1_796_083_200_000 + 7 * 3_600_000  # 2026-12-01 07:00 UTC, any time would do
    market = SyntheticMarket(anchor, seed=settings.exchange.seed)
    candles = market.candles(symbol, anchor - settings.training.window_days * DAY_MS, anchor)
    result = run_training(job(tmp_path, candles, TrainParams.from_settings(settings), symbol))
    m = result.metrics
    assert result.promoted is edge, (m, result.gate_reasons)
    if edge:
        assert m["positive_folds"] == 3 and m["net_return_pct"] > 5 and m["auc"] > 0.6, m
        assert m["round_trips"] >= 10 and m["win_rate"] > 0.5, m
    else:
        assert m["auc"] < 0.55 and result.gate_reasons, m


def test_flat_series_raises_single_class(tmp_path: Path) -> None:
    candles = random_walk_candles(14 * DAY, seed=3, price=1.0, volatility=2e-6)
    with pytest.raises(TrainingError, match=r"^USDC/USDT: labels have a single class \(all 0\)"):
        run_training(job(tmp_path, candles, TrainParams(), symbol="USDC/USDT"))

    constant = candles.copy()
    constant[:, 1:5] = 1.0
    with pytest.raises(TrainingError, match="USDC/USDT: labels have a single class"):
        run_training(job(tmp_path, constant, TrainParams(), symbol="USDC/USDT"))


def test_too_few_rows(tmp_path: Path) -> None:
    candles = random_walk_candles(977, seed=2)  # 977 - 60 - 15 = 902 usable rows
    with pytest.raises(TrainingError, match=r"^PEPE/USDT: 902 usable rows < 2000 minimum$"):
        run_training(job(tmp_path, candles, TrainParams(horizon_bars=15), symbol="PEPE/USDT"))


def test_rare_positives_cannot_be_validated(tmp_path: Path) -> None:
    candles = random_walk_candles(3 * DAY, seed=3, price=1.0, volatility=2e-6)
    candles[100, 4] *= 1.01  # one spike: one positive label (row 85), in the first block
    with pytest.raises(TrainingError, match="SYN/USDT: walk-forward validation found no fold"):
        run_training(job(tmp_path, candles, TrainParams(horizon_bars=15)))


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda c: c[:, :5], r"candles must be an \(N, 6\) array"),
        (lambda c: c[::-1], "candle times are not strictly increasing"),
    ],
)
def test_malformed_candles(tmp_path: Path, walk: np.ndarray, mangle, message: str) -> None:
    with pytest.raises(TrainingError, match=f"SYN/USDT: {message}"):
        run_training(job(tmp_path, mangle(walk), TrainParams()))
