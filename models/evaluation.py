"""Walk-forward trading evaluation and the promotion gate. Pure functions, no I/O.

Each walk-forward fold of a training job (``models/training.py``) trades its
out-of-sample block with ``trade_block``: the trader's own ``decide()``
(``models/decision.py``: thresholds, stop loss, minimum hold, cooldown), the
exchange's fee and slippage, and a fill model that never uses a price the bot
could not have had:

* the decision on candle ``i`` sees the model's P(up) from features of candles
  ``<= i`` and the price ``close[i]``;
* it fills at ``open[i + 1]``, slippage against us (buys higher, sells lower),
  and pays ``fee_rate`` of the notional;
* a position still open at the block's end is sold at the block's last close
  minus slippage and fee: a block's result includes getting out.

Nothing reads a candle after the block. The stake is the whole equity of the
block (compounded), so returns are in % of the stake. Beside the trading
figures each fold keeps its baselines on the same block: cash (0 %),
buy-and-hold (bought at the first fill price, sold at the last close, with the
same costs) and the majority class's accuracy.

``promotion_gate`` turns the folds into the yes/no that decides whether a model
is traded. The folds' models never saw their blocks, and the gate's thresholds
are settings, not chosen from the blocks they judge.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from models.decision import Intent, Position, RiskLimits, decide
from models.features import CLOSE, OPEN, TIME

DAY_S = 86_400.0


class BlockTrading(msgspec.Struct, frozen=True, kw_only=True):
    """One out-of-sample block traded with ``decide()``; returns in % of the stake."""

    net_return_pct: float  # after fees and slippage
    buy_hold_pct: float  # bought at the first possible fill, sold at the last close, same costs
    round_trips: int
    wins: int  # round trips that made money after costs
    win_rate: float  # wins / round_trips; 0 without round trips
    max_drawdown_pct: float  # worst fall of the marked-to-market equity from its peak
    exposure_pct: float  # share of the block's candles closed while holding
    fees_pct: float  # fees paid, in % of the starting stake
    orders: int  # fills: two per round trip
    days: float
    trades_per_day: float  # orders (fills) per day


class FoldResult(msgspec.Struct, frozen=True, kw_only=True):
    """A walk-forward fold: its test block, classification figures and its trading."""

    start_ms: int  # open time of the block's first candle
    end_ms: int  # open time of its last candle
    rows: int  # labelled rows scored
    accuracy: float
    majority_accuracy: float  # always predicting the block's majority class
    auc: float | None  # None when the block has a single class
    trading: BlockTrading


class TradingReport(msgspec.Struct, frozen=True, kw_only=True):
    """The walk-forward figures of a model, stored in its manifest as ``trading``."""

    folds: list[FoldResult]
    net_return_pct: float  # mean over the folds
    positive_folds: int  # folds whose net return beat promotion.min_net_return_pct
    buy_hold_pct: float  # mean over the folds
    cash_return_pct: float  # the cash baseline: always 0
    round_trips: int  # total over the folds
    win_rate: float  # over every round trip of every fold
    max_drawdown_pct: float  # the worst fold's
    exposure_pct: float  # mean over the folds
    fees_pct: float  # mean over the folds
    trades_per_day: float  # all fills / all days
    accuracy: float  # mean over the folds
    majority_accuracy: float
    auc: float  # mean over the folds that have both classes
    fee_rate: float
    slippage_bps: float
    fill: str = "next candle's open + slippage; block end: last close - slippage"


class Gate(msgspec.Struct, frozen=True, kw_only=True):
    """The promotion decision, stored in the manifest as ``gate``."""

    promoted: bool
    reasons: list[str]  # why not promoted; empty when promoted


def trade_block(
    candles: np.ndarray,
    prob_up: np.ndarray,
    limits: RiskLimits,
    fee_rate: float,
    slippage_bps: float,
) -> BlockTrading:
    """Trade ``candles`` (one block, (N, 6), oldest first) on ``prob_up`` (N,; NaN: no signal).

    ``prob_up[i]`` must come from candles ``<= i`` only. See the module doc for fills.
    """
    n = len(candles)
    if n < 2:
        raise ValueError(f"a block needs at least 2 candles, got {n}")
    if len(prob_up) != n:
        raise ValueError(f"prob_up has {len(prob_up)} values for {n} candles")
    slip = slippage_bps / 10_000.0
    opens = candles[:, OPEN].tolist()
    closes = candles[:, CLOSE].tolist()
    # a decision is taken at its candle's close
    now_s = (candles[:, TIME] / 1000.0 + limits.bar_s).tolist()
    probs = [None if not math.isfinite(p) else p for p in np.asarray(prob_up, float).tolist()]

    cash, amount = 1.0, 0.0
    position: Position | None = None
    last_exit: float | None = None
    entry_cash = fees = 0.0
    orders = trips = wins = held_closes = 0
    peak, max_dd = 1.0, 0.0

    def sell(price: float) -> None:
        nonlocal cash, amount, position, fees, orders, trips, wins
        notional = amount * price
        fees += notional * fee_rate
        cash = notional * (1.0 - fee_rate)
        amount, position = 0.0, None
        orders += 1
        trips += 1
        wins += cash > entry_cash

    for i in range(n - 1):
        decision = decide(
            symbol="",
            prob_up=probs[i],
            price=closes[i],
            position=position,
            open_positions=0,
            paused=False,
            limits=limits,
            now=now_s[i],
            last_exit_at=last_exit,
        )
        if decision is not None:
            if decision.intent is Intent.ENTRY:
                price = opens[i + 1] * (1.0 + slip)
                entry_cash = cash
                amount = cash / (price * (1.0 + fee_rate))
                fees += amount * price * fee_rate
                cash = 0.0
                position = Position(symbol="", amount=amount, entry_price=price, opened_at=now_s[i])
                orders += 1
            else:
                sell(opens[i + 1] * (1.0 - slip))
                last_exit = now_s[i]
        if position is not None:
            held_closes += 1
            if i + 1 == n - 1:
                sell(closes[i + 1] * (1.0 - slip))
        equity = cash + amount * closes[i + 1]
        peak = max(peak, equity)
        max_dd = max(max_dd, 1.0 - equity / peak)

    days = n * limits.bar_s / DAY_S
    first_buy = opens[1] * (1.0 + slip) * (1.0 + fee_rate)
    last_sell = closes[-1] * (1.0 - slip) * (1.0 - fee_rate)
    return BlockTrading(
        net_return_pct=100.0 * (cash - 1.0),
        buy_hold_pct=100.0 * (last_sell / first_buy - 1.0),
        round_trips=trips,
        wins=wins,
        win_rate=wins / trips if trips else 0.0,
        max_drawdown_pct=100.0 * max_dd,
        exposure_pct=100.0 * held_closes / (n - 1),
        fees_pct=100.0 * fees,
        orders=orders,
        days=days,
        trades_per_day=orders / days,
    )


def summarize(
    folds: list[FoldResult], *, min_net_return_pct: float, fee_rate: float, slippage_bps: float
) -> TradingReport:
    """The walk-forward report of ``folds`` (at least one)."""
    if not folds:
        raise ValueError("no folds to summarize")
    trades = [f.trading for f in folds]
    trips = sum(t.round_trips for t in trades)
    aucs = [f.auc for f in folds if f.auc is not None]
    days = sum(t.days for t in trades)
    return TradingReport(
        folds=folds,
        net_return_pct=_mean(t.net_return_pct for t in trades),
        positive_folds=sum(t.net_return_pct > min_net_return_pct for t in trades),
        buy_hold_pct=_mean(t.buy_hold_pct for t in trades),
        cash_return_pct=0.0,
        round_trips=trips,
        win_rate=sum(t.wins for t in trades) / trips if trips else 0.0,
        max_drawdown_pct=max(t.max_drawdown_pct for t in trades),
        exposure_pct=_mean(t.exposure_pct for t in trades),
        fees_pct=_mean(t.fees_pct for t in trades),
        trades_per_day=sum(t.orders for t in trades) / days,
        accuracy=_mean(f.accuracy for f in folds),
        majority_accuracy=_mean(f.majority_accuracy for f in folds),
        auc=_mean(aucs) if aucs else 0.5,
        fee_rate=fee_rate,
        slippage_bps=slippage_bps,
    )


def promotion_gate(report: TradingReport, *, min_net_return_pct: float, min_auc: float) -> Gate:
    """Promote only a model whose walk-forward trading beat ``min_net_return_pct`` after costs
    in at least half the folds and on average, and whose AUC is at least ``min_auc``."""
    reasons: list[str] = []
    k = len(report.folds)
    mean, positive = report.net_return_pct, report.positive_folds
    if mean <= min_net_return_pct:
        reasons.append(
            f"walk-forward net return {mean:.2f} % <= {min_net_return_pct:g} % "
            f"({positive} of {k} folds above)"
        )
    elif 2 * positive < k:
        reasons.append(
            f"walk-forward net return above {min_net_return_pct:g} % in only {positive} of "
            f"{k} folds (mean {mean:.2f} %)"
        )
    if report.auc < min_auc:
        reasons.append(f"walk-forward AUC {report.auc:.3f} < {min_auc:g}")
    return Gate(promoted=not reasons, reasons=reasons)


def _mean(values: object) -> float:
    return float(np.mean(list(values)))  # type: ignore[call-overload]
