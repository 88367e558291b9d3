"""The promotion gate and the default trading rules on real candles nobody here generated.

Run from the repository root:  python benchmarks/realdata_gate.py [--train-share 0.6]

For each of the five real Binance series in tests/data/realdata (5m candles,
January 2018; see the README there): train with `models.training.run_training`
and the default settings on the first 60 %, exactly as the bot would (walk-forward
folds traded with `decide()`, then the promotion gate); then trade the last 40 %
candle by candle with the saved model (its strategy's latest-row features on the
history up to each candle), the same `decide()`, fees and slippage
(`models.evaluation.trade_block`: fills at the next candle's open).

Columns: promoted by the gate?; walk-forward net return (mean of the folds, what
the gate judged); out-of-sample net return on the last 40 % (what trading the
model would have made; for a rejected model, what the gate saved or cost);
buy-and-hold on that 40 % with the same costs; fees paid and round trips there;
orders per day. Nothing here was tuned on these candles (the defaults come from
benchmarks/choose_defaults.py on the synthetic market).

`--before` runs the rules the bot had before the gate, for comparison: label
"close 3 candles ahead > +5 bps", entry 0.55 / exit 0.45, no minimum hold, no
gate (every model traded).
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import msgspec
import numpy as np
from _common import ROOT, result, table
from threadpoolctl import threadpool_limits

from config.settings import Settings
from models import artifacts
from models.evaluation import BlockTrading, trade_block
from models.features import round_trip_cost
from models.training import TrainingError, TrainJob, TrainParams, TrainResult, run_training

DATA = ROOT / "tests" / "data" / "realdata"
TIMEFRAME = "5m"


def load_series(path: Path) -> np.ndarray:
    with gzip.open(path, "rt") as f:
        return np.loadtxt(f, delimiter=",", skiprows=1, ndmin=2)


def symbol_of(path: Path) -> str:
    """binance_ETH-BTC_5m.csv.gz -> ETH/BTC"""
    return path.name.split("_")[1].replace("-", "/")


def out_of_sample(
    staging: str, candles: np.ndarray, split: int, params: TrainParams, bar_s: float
) -> BlockTrading:
    """Trade candles[split:] with the saved model, one candle at a time as the trader does."""
    model = artifacts.load_version(staging)
    strategy = model.strategy
    prob = np.array(
        [
            model.prob_up(strategy.latest_features(candles[: i + 1]))
            for i in range(split, len(candles))
        ]
    )
    return trade_block(
        candles[split:], prob, params.limits(bar_s), params.fee_rate, params.slippage_bps
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-share", type=float, default=0.6)
    ap.add_argument("--before", action="store_true", help="the rules before the gate")
    args = ap.parse_args()

    params = TrainParams.from_settings(Settings())
    if args.before:
        params = msgspec.structs.replace(
            params,
            horizon_bars=3,
            label_margin=0.0005 - round_trip_cost(params.fee_rate, params.slippage_bps),
            entry_threshold=0.55,
            exit_threshold=0.45,
            min_hold_bars=0,
            cooldown_bars=0,
            max_hold_bars=0,
            min_net_return_pct=-100.0,  # every model traded
            min_auc=0.0,
        )
    bar_s = 300.0
    print(
        f"defaults: horizon {params.horizon_bars} candles, label > "
        f"{100 * params.label_threshold:.2f} %, entry {params.entry_threshold:g} / exit "
        f"{params.exit_threshold:g}, min hold {params.min_hold_bars}, cooldown "
        f"{params.cooldown_bars}, max hold {params.max_hold_bars} candles, stop loss "
        f"{params.stop_loss_pct:g} %, fee {100 * params.fee_rate:g} % + "
        f"{params.slippage_bps:g} bps per fill\n"
    )
    rows: list[list[object]] = []
    summary: dict[str, dict[str, object]] = {}
    started = time.perf_counter()
    for path in sorted(DATA.glob("*.csv.gz")):
        symbol = symbol_of(path)
        candles = load_series(path)
        split = int(len(candles) * args.train_share)
        with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=1):
            staging = artifacts.new_staging_dir(tmp)
            job = TrainJob(symbol, TIMEFRAME, candles[:split], str(staging), params)
            try:
                trained: TrainResult = run_training(job)
            except TrainingError as e:
                print(f"{symbol}: not trained: {e}")
                continue
            oos = out_of_sample(trained.staging_dir, candles, split, params, bar_s)
        m = trained.metrics
        rows.append(
            [
                symbol,
                "yes" if trained.promoted else "no",
                f"{m['auc']:.3f}",
                f"{m['net_return_pct']:+.2f}",
                f"{m['buy_hold_pct']:+.2f}",
                f"{oos.net_return_pct:+.2f}",
                f"{oos.buy_hold_pct:+.2f}",
                f"{oos.fees_pct:.2f}",
                oos.round_trips,
                f"{oos.trades_per_day:.1f}",
            ]
        )
        summary[symbol] = {
            "promoted": trained.promoted,
            "wf_net_pct": round(m["net_return_pct"], 3),
            "oos_net_pct": round(oos.net_return_pct, 3),
            "oos_buy_hold_pct": round(oos.buy_hold_pct, 3),
            "oos_round_trips": oos.round_trips,
        }
        for reason in trained.gate_reasons:
            print(f"{symbol}: rejected: {reason}")
    headers = [
        "symbol",
        "promoted",
        "wf AUC",
        "wf net %",
        "wf buy&hold %",
        "oos net %",
        "oos buy&hold %",
        "oos fees %",
        "oos round trips",
        "oos orders/day",
    ]
    print()
    print(table(headers, rows))
    bad = [s for s, v in summary.items() if v["promoted"] and float(v["wf_net_pct"]) < 0]  # type: ignore[arg-type]
    print(f"\npromoted with a negative walk-forward net return: {len(bad)} (target 0)")
    result(
        "realdata_gate",
        symbols=summary,
        promoted_negative_wf=len(bad),
        seconds=round(time.perf_counter() - started, 1),
    )


if __name__ == "__main__":
    main()
