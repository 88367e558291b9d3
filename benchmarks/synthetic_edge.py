"""Which synthetic symbols the default model promotes, and how surely, whatever the anchor.

Run from the repository root:
    python benchmarks/synthetic_edge.py [--anchors 40] [--symbols ETH/USDT SOL/USDT]
                                        [--trend ETH/USDT=0.018 ...] [--skip 40]

A default run anchors the synthetic market at its first start, so the 90 days a
symbol is trained on depend on the day the bot was first started. For each of
`--anchors` anchors (from the simulation's start, 37 days and 5 h 13 min apart:
every time of day, two and a half years) this trains each symbol as the bot does at
startup (`run_training` with the settings' defaults on the settings' window) and
counts how often the promotion gate passes, the walk-forward net returns, the folds
that did not make money (and those that did not trade at all) and the round trips
per day. `--trend SYMBOL=X` replaces a symbol's `trend_per_hour` (log drift per hour
of its rallies and slides) to see how much trend the gate needs. The trends were
chosen on the first 40 anchors: `--skip 40` scores them on anchors they never saw.
"""

from __future__ import annotations

import argparse
import time

import msgspec
import numpy as np
from _common import T0, result, table, thread_cap

from config.settings import Settings
from exchange.synthetic import DEFAULT_SYMBOLS, SyntheticMarket
from models.evaluation import promotion_gate
from models.training import TrainParams, evaluate, fold_predictions, prepare

DAY_MS = 86_400_000
ANCHOR_STEP_MS = 37 * DAY_MS + (5 * 60 + 13) * 60_000


def main() -> None:
    with thread_cap():
        run()


def run() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--anchors", type=int, default=40)
    ap.add_argument("--symbols", nargs="+", default=["ETH/USDT", "SOL/USDT"])
    ap.add_argument("--trend", nargs="*", default=[], metavar="SYMBOL=PER_HOUR")
    ap.add_argument("--skip", type=int, default=0, help="start after this many anchors")
    args = ap.parse_args()

    trends = {k: float(v) for k, v in (t.split("=", 1) for t in args.trend)}
    specs = tuple(
        msgspec.structs.replace(s, trend_per_hour=trends[s.symbol]) if s.symbol in trends else s
        for s in DEFAULT_SYMBOLS
    )
    settings = Settings()
    params = TrainParams.from_settings(settings)
    window_ms = int(settings.training.window_days * DAY_MS)
    ks = range(args.skip, args.skip + args.anchors)
    anchors = [int(T0 * 1000) + k * ANCHOR_STEP_MS for k in ks]
    started = time.perf_counter()
    rows = []
    for symbol in args.symbols:
        promoted, nets, losing, idle, trips_per_day = 0, [], 0, 0, []
        for anchor in anchors:
            market = SyntheticMarket(anchor, seed=settings.exchange.seed, specs=specs)
            data = prepare(symbol, market.candles(symbol, anchor - window_ms, anchor), "1m", params)
            _, report = evaluate(symbol, fold_predictions(data, params), params, data.bar_s)
            gate = promotion_gate(
                report, min_net_return_pct=params.min_net_return_pct, min_auc=params.min_auc
            )
            promoted += gate.promoted
            nets.append(report.net_return_pct)
            losing += sum(
                f.trading.net_return_pct <= params.min_net_return_pct for f in report.folds
            )
            idle += sum(f.trading.round_trips == 0 for f in report.folds)
            trips_per_day.append(report.round_trips / sum(f.trading.days for f in report.folds))
        spec = next(s for s in specs if s.symbol == symbol)
        rows.append(
            (
                symbol,
                100 * spec.trend_per_hour,
                f"{promoted}/{len(anchors)}",
                float(np.median(nets)),
                min(nets),
                f"{losing}/{len(nets) * params.walk_forward_folds}",
                idle,
                float(np.median(trips_per_day)),
            )
        )
    print(
        table(
            [
                "symbol",
                "trend %/h",
                "promoted",
                "median net %",
                "min net %",
                "folds <= 0",
                "folds w/o trade",
                "round trips/day",
            ],
            rows,
        )
    )
    print(
        f"\n{len(anchors)} anchors, seed {settings.exchange.seed}, "
        f"{settings.training.window_days:g}-day windows, {time.perf_counter() - started:.0f} s"
    )
    result("synthetic_edge", promoted={r[0]: r[2] for r in rows})


if __name__ == "__main__":
    main()
