"""The model plug-in point: the example plug-in end to end, and the plug-ins refused at load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from actors.messages import ModelsUpdated, SignalProduced
from examples import logistic
from exchange.paper import PaperExchange
from models import artifacts
from models.pool import TrainingPool
from models.strategy import Strategy, StrategyError, load_strategy
from models.synthetic import random_walk_candles
from models.training import TrainingError, TrainJob, TrainParams, run_training
from policy.lifecycle import SymbolState
from storage.ledger import MemoryLedger
from tests.harness import HOLD, settle, traded_params
from tests.test_actors_isolated import TraderRig, _states, exchange_and_clock  # noqa: F401

EXAMPLE = "examples.logistic:strategy"
PARAMS = traded_params(strategy=EXAMPLE, max_iter=30)


def _job(tmp_path: Path, symbol: str = "SYN/USDT") -> TrainJob:
    staging = artifacts.new_staging_dir(tmp_path / "models")
    candles = random_walk_candles(4000, seed=1, momentum=0.3)
    return TrainJob(symbol, "1m", candles, str(staging), PARAMS)


def test_the_example_plugin_trains_end_to_end(tmp_path: Path) -> None:
    with threadpool_limits(limits=1, user_api="openmp"):
        result = run_training(_job(tmp_path))
    assert 0.54 < result.metrics["auc"] < 0.8, result.metrics  # it learned the momentum
    manifest = artifacts.read_manifest(result.staging_dir)
    assert manifest.strategy == EXAMPLE
    assert manifest.feature_names == list(logistic.FEATURES)
    assert manifest.params["strategy"] == EXAMPLE
    assert manifest.trading is not None and len(manifest.trading.folds) == 3
    loaded = artifacts.load_version(result.staging_dir)
    assert type(loaded.estimator).__name__ == "Pipeline"
    assert loaded.strategy.name == EXAMPLE and loaded.strategy.lookback_bars == 16
    candles = random_walk_candles(100, seed=3)
    row = loaded.strategy.latest_features(candles)
    expected = loaded.estimator.predict_proba(logistic.batch(candles)[-1:])[0, 1]
    assert loaded.prob_up(row) == pytest.approx(expected)


def test_a_worker_process_imports_the_plugin(tmp_path: Path) -> None:
    pool = TrainingPool(workers=1, kind="process")
    try:
        result = pool.submit(_job(tmp_path)).result(timeout=120)
    finally:
        pool.shutdown()
    assert artifacts.read_manifest(result.staging_dir).strategy == EXAMPLE


def test_the_trader_trades_a_plugin_model_on_its_own_features(
    tmp_path: Path,
    exchange_and_clock: tuple[PaperExchange, Any],  # noqa: F811
) -> None:
    with threadpool_limits(limits=1, user_api="openmp"):
        result = run_training(_job(tmp_path, "BTC/USDT"))
    manifest = artifacts.publish(tmp_path / "models", result.staging_dir)
    model = artifacts.load_version(tmp_path / "models" / manifest.version)
    exchange, clock = exchange_and_clock
    rig = TraderRig(exchange, clock, MemoryLedger(), **HOLD)
    rig.ref.tell(ModelsUpdated(version=manifest.version, symbols=(), models={"BTC/USDT": model}))
    rig.ref.tell(_states(BTC_USDT=SymbolState.ACTIVE))
    for _ in range(3):  # a candle at a time, as the simulator steps: each is decided in turn
        clock.advance(60)
        settle(rig.runtime)
    signals = rig.events.of(SignalProduced)
    assert len(signals) >= 2
    # the trader's P(up) is the plug-in's latest row through the plug-in's model
    last = signals[-1]
    candles = np.asarray(exchange.fetch_ohlcv("BTC/USDT", "1m", limit=50), dtype=np.float64)
    candles = candles[candles[:, 0] <= last.candle_ms]
    assert last.prob_up == pytest.approx(model.prob_up(logistic.latest(candles)))


# --- plug-ins refused at load --------------------------------------------------------


def disagreeing() -> Strategy:
    """The example, except that its latest row takes the population std (ddof=0)."""

    def latest(candles: np.ndarray) -> np.ndarray:
        row = logistic.latest(candles)
        row[3] = np.diff(np.log(candles[-16:, 4])).std(ddof=0)
        return row

    return Strategy(
        feature_names=logistic.FEATURES,
        lookback_bars=logistic.LOOKBACK,
        batch_features=logistic.batch,
        latest_features=latest,
        make_estimator=logistic.estimator,
    )


def too_few_columns() -> Strategy:
    return Strategy(
        feature_names=(*logistic.FEATURES, "extra"),
        lookback_bars=logistic.LOOKBACK,
        batch_features=logistic.batch,
        latest_features=logistic.latest,
        make_estimator=logistic.estimator,
    )


def not_a_strategy() -> dict[str, str]:
    return {"features": "ret_1"}


def test_a_plugin_whose_batch_and_latest_features_disagree_is_refused() -> None:
    spec = "tests.test_models_strategy:disagreeing"
    with pytest.raises(StrategyError) as err:
        load_strategy(spec)
    message = str(err.value)
    assert message.startswith(f"strategy {spec}: batch and latest-row features disagree")
    assert "first differing column 'vol_15' at row 15" in message


def test_a_plugin_refused_at_load_cannot_train(tmp_path: Path) -> None:
    staging = artifacts.new_staging_dir(tmp_path / "models")
    params = TrainParams(strategy="tests.test_models_strategy:disagreeing")
    job = TrainJob("SYN/USDT", "1m", random_walk_candles(3000, seed=1), str(staging), params)
    with pytest.raises(
        TrainingError, match=r"^SYN/USDT: strategy .*first differing column 'vol_15'"
    ):
        run_training(job)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("examples.logistic", "expected 'module:function'"),
        ("examples.nothing:strategy", "cannot import examples.nothing"),
        ("examples.logistic:nothing", "examples.logistic has no function nothing"),
        ("tests.test_models_strategy:not_a_strategy", "returned dict, not a Strategy"),
        ("tests.test_models_strategy:too_few_columns", r"batch_features gave shape \(136, 4\)"),
    ],
)
def test_bad_plugins_are_refused_with_their_name(spec: str, message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        load_strategy(spec)
