"""Walk-forward trading evaluation, the promotion gate, and what they may not look at."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from models.decision import RiskLimits
from models.evaluation import (
    BlockTrading,
    FoldResult,
    promotion_gate,
    summarize,
    trade_block,
)
from models.features import CLOSE, batch_features, make_labels, round_trip_cost
from models.synthetic import random_walk_candles
from models.training import TrainParams, evaluate, fold_predictions, prepare

FEE, SLIP_BPS = 0.001, 5.0
SLIP = SLIP_BPS / 10_000
LIMITS = RiskLimits(
    stake_quote=1.0,
    max_open_positions=1,
    stop_loss_pct=2.0,
    entry_threshold=0.6,
    exit_threshold=0.4,
    bar_s=60.0,
)


def candles_from(opens: list[float], closes: list[float]) -> np.ndarray:
    n = len(opens)
    o, c = np.array(opens), np.array(closes)
    t = 1_700_000_000_000 + 60_000 * np.arange(n, dtype=np.float64)
    return np.column_stack([t, o, np.maximum(o, c), np.minimum(o, c), c, np.ones(n)])


# candle:      0      1      2      3      4      5
OPENS = [100.0, 101.0, 103.0, 104.0, 106.0, 105.0]
CLOSES = [100.5, 102.0, 104.0, 105.0, 105.5, 107.0]


def test_a_round_trip_fills_at_the_next_open_with_slippage_and_fees() -> None:
    # buy signal on candle 0, sell signal on candle 3
    prob = np.array([0.9, 0.5, 0.5, 0.1, 0.5, 0.5])
    t = trade_block(candles_from(OPENS, CLOSES), prob, LIMITS, FEE, SLIP_BPS)
    buy = 101.0 * (1 + SLIP)  # open of candle 1
    sell = 106.0 * (1 - SLIP)  # open of candle 4
    amount = 1.0 / (buy * (1 + FEE))
    final = amount * sell * (1 - FEE)
    assert t.net_return_pct == pytest.approx(100 * (final - 1))
    assert t.fees_pct == pytest.approx(100 * (amount * buy * FEE + amount * sell * FEE))
    assert (t.orders, t.round_trips, t.wins, t.win_rate) == (2, 1, 1, 1.0)
    assert t.exposure_pct == pytest.approx(100 * 3 / 5)  # held at the closes of candles 1-3
    bh = 107.0 * (1 - SLIP) * (1 - FEE) / (101.0 * (1 + SLIP) * (1 + FEE)) - 1
    assert t.buy_hold_pct == pytest.approx(100 * bh)
    assert t.trades_per_day == pytest.approx(2 / (6 / 1440))


def test_an_open_position_is_sold_at_the_last_close_and_the_last_candle_never_trades() -> None:
    held = trade_block(candles_from(OPENS, CLOSES), np.full(6, 0.9), LIMITS, FEE, SLIP_BPS)
    amount = 1.0 / (101.0 * (1 + SLIP) * (1 + FEE))
    assert held.net_return_pct == pytest.approx(100 * (amount * 107.0 * (1 - SLIP) * (1 - FEE) - 1))
    assert (held.orders, held.round_trips) == (2, 1)
    # a signal on the block's last candle has no next open inside the block: no order
    late = trade_block(
        candles_from(OPENS, CLOSES), np.array([0.5] * 5 + [0.9]), LIMITS, FEE, SLIP_BPS
    )
    assert (late.orders, late.net_return_pct, late.exposure_pct) == (0, 0.0, 0.0)


def test_the_stop_loss_and_missing_signals() -> None:
    closes = [100.0, 100.0, 97.0, 97.5, 99.0, 99.0]
    opens = [100.0, 100.0, 100.0, 97.0, 97.5, 99.0]
    # entry on candle 0 (fill 100 + slippage); candle 2 closes 3 % lower: stop, sold at open 3
    prob = np.array([0.9, math.nan, math.nan, 0.9, math.nan, math.nan])
    t = trade_block(candles_from(opens, closes), prob, LIMITS, FEE, SLIP_BPS)
    amount = 1.0 / (100.0 * (1 + SLIP) * (1 + FEE))
    after_stop = amount * 97.0 * (1 - SLIP) * (1 - FEE)
    # re-entered on candle 3's signal (no cooldown), sold at the last close
    again = after_stop / (97.5 * (1 + SLIP) * (1 + FEE)) * 99.0 * (1 - SLIP) * (1 - FEE)
    assert t.round_trips == 2 and t.wins == 1
    assert t.net_return_pct == pytest.approx(100 * (again - 1))
    assert t.max_drawdown_pct > 3.0


def test_turnover_rules_cut_the_orders_of_a_hovering_signal() -> None:
    candles = random_walk_candles(2000, seed=5)
    hovering = 0.5 + 0.15 * np.sin(np.arange(2000))  # crosses both thresholds every few candles
    loose = trade_block(candles, hovering, LIMITS, FEE, SLIP_BPS)
    tight = msgspec.structs.replace(LIMITS, min_hold_bars=30, cooldown_bars=30)
    calm = trade_block(candles, hovering, tight, FEE, SLIP_BPS)
    assert loose.orders > 500
    assert 0 < calm.orders < loose.orders / 10
    assert calm.fees_pct < loose.fees_pct / 5  # (the loose stake shrinks as it pays)


def _fold(net: float, auc: float | None = 0.6) -> FoldResult:
    trading = BlockTrading(
        net_return_pct=net,
        buy_hold_pct=1.0,
        round_trips=2,
        wins=1,
        win_rate=0.5,
        max_drawdown_pct=1.0,
        exposure_pct=10.0,
        fees_pct=0.4,
        orders=4,
        days=2.0,
        trades_per_day=2.0,
    )
    return FoldResult(
        start_ms=0,
        end_ms=1,
        rows=100,
        accuracy=0.6,
        majority_accuracy=0.55,
        auc=auc,
        trading=trading,
    )


def _gate(nets: list[float], aucs: list[float | None] | None = None, **kw: float):
    folds = [_fold(n, a) for n, a in zip(nets, aucs or [0.6] * len(nets), strict=True)]
    report = summarize(
        folds, min_net_return_pct=kw.get("min_net", 0.0), fee_rate=FEE, slippage_bps=5
    )
    return promotion_gate(
        report, min_net_return_pct=kw.get("min_net", 0.0), min_auc=kw.get("min_auc", 0.5)
    )


def test_promotion_gate() -> None:
    assert _gate([1.0, 0.5, -0.2]).promoted  # 2 of 3 folds, and the mean, above 0
    assert _gate([1.0, -0.1]).promoted  # half the folds is enough
    lost = _gate([-1.0, -2.0, 1.5])
    assert not lost.promoted
    assert lost.reasons == ["walk-forward net return -0.50 % <= 0 % (1 of 3 folds above)"]
    lucky = _gate([5.0, -0.1, -0.2])  # one lucky fold carries the mean
    assert lucky.reasons == ["walk-forward net return above 0 % in only 1 of 3 folds (mean 1.57 %)"]
    weak = _gate([1.0, 1.0, 1.0], [0.49, 0.5, None], min_auc=0.52)
    assert weak.reasons == ["walk-forward AUC 0.495 < 0.52"]
    assert not _gate([0.4, 0.3], min_net=0.5).promoted
    assert not _gate([0.0, 0.0, 0.0]).promoted  # a model that never trades earns nothing


# --- what the evaluation may not look at ---------------------------------------------


def test_labels_before_t_minus_horizon_ignore_candles_after_t() -> None:
    candles = random_walk_candles(600, seed=2)
    threshold = round_trip_cost(FEE, SLIP_BPS)
    for horizon in (1, 7, 30):
        for t in (100, 350):
            changed = candles.copy()
            changed[t + 1 :, 1:5] *= 0.95  # every candle after t
            before = make_labels(candles, horizon, threshold).to_numpy()
            after = make_labels(changed, horizon, threshold).to_numpy()
            np.testing.assert_array_equal(before[: t - horizon + 1], after[: t - horizon + 1])
            # the labels of the last `horizon` rows up to t do see the fall (and must)
            assert (after[t - horizon + 1 : t + 1] == 0).all()


@pytest.fixture(scope="module")
def walk() -> np.ndarray:
    return random_walk_candles(4000, seed=11, momentum=0.3)


def test_no_fold_trades_on_candles_after_its_block(walk: np.ndarray) -> None:
    # cost-free, so that every fold trades
    params = TrainParams(
        horizon_bars=3,
        min_rows=500,
        max_iter=30,
        fee_rate=0.0,
        slippage_bps=0.0,
        label_margin=0.0,
        entry_threshold=0.52,
        exit_threshold=0.48,
        min_hold_bars=0,
        cooldown_bars=0,
        max_hold_bars=0,
    )
    with threadpool_limits(limits=1, user_api="openmp"):
        folds = fold_predictions(prepare("W", walk, "1m", params), params)
        _, report = evaluate("W", folds, params, 60.0)
        # everything after the second fold's block (and so the whole third block) changes
        t = int(np.flatnonzero(walk[:, 0] == report.folds[1].end_ms)[0])
        changed = walk.copy()
        changed[t + 1 :, 1:5] *= np.exp(
            np.random.default_rng(0).normal(0, 0.01, (len(walk) - t - 1, 1))
        )
        folds2 = fold_predictions(prepare("W", changed, "1m", params), params)
        _, report2 = evaluate("W", folds2, params, 60.0)
    assert len(report.folds) == len(report2.folds) == 3
    assert all(f.trading.round_trips > 5 for f in report.folds)
    for before, after in zip(folds[:2], folds2[:2], strict=True):  # same models, same signals
        np.testing.assert_array_equal(before.prob_up, after.prob_up)
    # the same trades and figures (only the labels of a block's last candles, whose future
    # lies past the block, may differ)
    assert [f.trading for f in report.folds[:2]] == [f.trading for f in report2.folds[:2]]
    assert report.folds[2].trading != report2.folds[2].trading
    # features at or before t do not change either
    np.testing.assert_array_equal(
        batch_features(walk).iloc[: t + 1].to_numpy(),
        batch_features(changed).iloc[: t + 1].to_numpy(),
    )
    assert walk[t, CLOSE] == changed[t, CLOSE]
