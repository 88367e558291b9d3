"""How the label and turnover defaults were chosen, on data that never scores them.

Run from the repository root:  python benchmarks/choose_defaults.py [--days 21] [--top 12]

Selection data: the synthetic market of seed 101 (the bot's synthetic market model
with another seed: not the seed-7 market that the paper default and `simulate`
trade), its six default trading symbols without the trend regimes that ETH and SOL
have had since (the defaults were chosen where no symbol has an edge), 1m
candles ending 100 days before the simulation's start. Never the real candles of
tests/data/realdata (they are the check: benchmarks/realdata_gate.py) and never
the simulated week.

For each symbol, horizon and label margin the walk-forward folds of a training are
fitted once (`models.training.fold_predictions`); then every set of trading rules
(entry/exit thresholds, minimum hold, cooldown, maximum hold) trades every fold's
block with the trader's own `decide()`, fees and slippage (`models.evaluation`).
Not trading at all (the cash baseline, 0 %) beats every rule set that trades
on this market, so the table ranks only the rule sets that trade at least
`--min-orders` orders per symbol per day, by mean net return over symbols x
folds. The chosen defaults are its first line, stated in config/settings.py.
"""

from __future__ import annotations

import argparse
import itertools
import time

import msgspec
import numpy as np
from _common import T0, result, table
from threadpoolctl import threadpool_limits

from exchange.synthetic import DEFAULT_SYMBOLS, SyntheticMarket
from models.evaluation import trade_block
from models.training import FoldPrediction, TrainingError, TrainParams, fold_predictions, prepare

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT", "LINK/USDT")
DAY_MS = 86_400_000


# The market the defaults were chosen on: trends off, so the recorded table still holds.
NO_TRENDS = tuple(msgspec.structs.replace(s, trend_per_hour=0.0) for s in DEFAULT_SYMBOLS)


def selection_candles(symbol: str, days: float, seed: int) -> np.ndarray:
    market = SyntheticMarket(anchor_ms=int(T0 * 1000), seed=seed, specs=NO_TRENDS)
    end = int(T0 * 1000) - 100 * DAY_MS
    return np.asarray(market.ohlcv(symbol, "1m", end - int(days * DAY_MS), end))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=21.0)
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--horizons", type=int, nargs="+", default=[5, 10, 20, 40, 60])
    ap.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.002])
    ap.add_argument("--min-orders", type=float, default=1.0, help="per symbol per day")
    args = ap.parse_args()

    started = time.perf_counter()
    candles = {s: selection_candles(s, args.days, args.seed) for s in SYMBOLS}
    base = TrainParams()
    rows: list[tuple[float, ...]] = []
    keys: list[tuple[int, float, float, float, int, int, int]] = []
    with threadpool_limits(limits=1):
        for horizon, margin in itertools.product(args.horizons, args.margins):
            params = msgspec.structs.replace(base, horizon_bars=horizon, label_margin=margin)
            folds: dict[str, list[FoldPrediction]] = {}
            for symbol, c in candles.items():
                try:
                    folds[symbol] = fold_predictions(prepare(symbol, c, "1m", params), params)
                except TrainingError as e:
                    print(f"{symbol} H={horizon} margin={margin}: {e}")
            rules = itertools.product(
                (0.5, 0.6, 0.7, 0.8),  # entry
                (0.2, 0.35, 0.5),  # exit
                (0, horizon // 2, horizon),  # min hold
                (0, horizon),  # cooldown
                (0, 2 * horizon),  # max hold
            )
            for entry, exit_, hold, cool, max_hold in rules:
                if exit_ >= entry:
                    continue
                p = msgspec.structs.replace(
                    params,
                    entry_threshold=entry,
                    exit_threshold=exit_,
                    min_hold_bars=hold,
                    cooldown_bars=cool,
                    max_hold_bars=max_hold,
                )
                limits = p.limits(60.0)
                nets, per_day, trips = [], [], 0
                for fs in folds.values():
                    for f in fs:
                        t = trade_block(f.candles, f.prob_up, limits, p.fee_rate, p.slippage_bps)
                        nets.append(t.net_return_pct)
                        per_day.append(t.trades_per_day)
                        trips += t.round_trips
                if not nets:
                    continue
                keys.append((horizon, margin, entry, exit_, hold, cool, max_hold))
                rows.append(
                    (
                        float(np.mean(nets)),
                        float(np.median(nets)),
                        100.0 * float(np.mean(np.asarray(nets) > 0)),
                        float(np.mean(per_day)),
                        float(trips),
                    )
                )
            print(f"H={horizon} margin={margin}: {len(folds)} symbols fitted", flush=True)
    trading = [i for i in range(len(rows)) if rows[i][3] >= args.min_orders]
    order = sorted(trading, key=lambda i: -rows[i][0])
    positive = sum(r[0] > 0 for r in rows)
    headers = [
        "horizon",
        "margin",
        "entry",
        "exit",
        "min_hold",
        "cooldown",
        "max_hold",
        "mean net %",
        "median net %",
        "folds > 0 %",
        "orders/day",
        "round trips",
    ]
    print(f"\nselection: synthetic seed {args.seed}, {len(SYMBOLS)} symbols, {args.days:g} days")
    print(
        f"{len(rows)} rule sets, {positive} with a positive mean net return; "
        f"{len(trading)} trade >= {args.min_orders:g} orders/day; the best of those:"
    )
    print(table(headers, [_row(keys[i], rows[i]) for i in order[: args.top]]))
    best_of: dict[tuple[int, float], int] = {}
    for i in order:
        best_of.setdefault(keys[i][:2], i)
    print("\nthe best rule set of each horizon and margin:")
    print(table(headers, [_row(keys[i], rows[i]) for i in sorted(best_of.values())]))
    best = order[0]
    result(
        "choose_defaults",
        configs=len(rows),
        positive=positive,
        best=dict(zip(headers[:7], keys[best], strict=True)),
        mean_net_pct=rows[best][0],
        orders_per_day=rows[best][3],
        seconds=time.perf_counter() - started,
    )


def _row(key: tuple[float, ...], figures: tuple[float, ...]) -> list[object]:
    horizon, margin, *rules = key
    return [int(horizon), f"{100 * margin:.1f} %", *rules, *figures]


if __name__ == "__main__":
    main()
