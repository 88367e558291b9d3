"""7. Backtest speed: the five real series (20 days of 5 m candles) through the whole bot.

    python benchmarks/backtest_speed.py [--symbols ETH/BTC,LTC/BTC] [--days 20]

Runs `simulation.backtest.backtest` (what `python supervisor.py backtest --candles
tests/data/realdata --settings docs/settings/backtest-5m.yaml` runs, without the
report) from the first candle to the last: every symbol blocked for short history,
then trained (and retrained as the settings say), then traded on every candle.
Training included. Reports the wall time and the candles replayed per wall second.
Target: the five series in < 30 s. Next step: 20 symbols x 90 days of 5 m in < 60 s.
"""

from __future__ import annotations

import argparse
import os
import time

import _common

from config.settings import load_settings
from core.timeframes import DAY_MS
from exchange.replay import ReplayMarket
from simulation.backtest import backtest
from simulation.backtest_inputs import replay_window
from storage.candle_files import read_candle_folder

REALDATA = _common.ROOT / "tests" / "data" / "realdata"
SETTINGS = _common.ROOT / "docs" / "settings" / "backtest-5m.yaml"
TARGET_S = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", help="only these (default: all five)")
    parser.add_argument("--days", type=float, default=None, help="only the first N days")
    args = parser.parse_args()
    settings = load_settings(SETTINGS)
    symbols = args.symbols.split(",") if args.symbols else None
    _, series = read_candle_folder(REALDATA, settings.timeframe, symbols)
    market = ReplayMarket(series, settings.timeframe)
    first = min(market.listed_ms(s) for s in market.symbols())
    to_ms = None if args.days is None else first + int(args.days * DAY_MS)
    window = replay_window(market, settings.timeframe, None, to_ms)
    cap = _common.thread_cap()
    started = time.perf_counter()
    result = backtest(settings, market, window=window)
    wall = time.perf_counter() - started
    cap.restore_original_limits()
    s = result.summary
    trainings = sum(sym.trainings_started for sym in s.symbols.values())
    load = os.getloadavg()[0]
    print(
        f"{s.market_symbols} real series, {s.days:g} days of {s.timeframe} candles "
        f"({s.start} to {s.end}), settings {SETTINGS.relative_to(_common.ROOT)}; "
        f"{os.cpu_count()} cores, load average {load:.2f} at the end"
    )
    print(
        _common.table(
            [
                "symbols",
                "candles",
                "steps",
                "trainings",
                "signals",
                "orders",
                "wall s",
                "candles/s",
                "speed-up",
                "violations",
            ],
            [
                (
                    s.market_symbols,
                    s.candles,
                    s.steps,
                    trainings,
                    s.signals,
                    s.orders,
                    round(wall, 1),
                    round(s.candles / wall),
                    round(s.speedup),
                    len(s.invariant_violations),
                )
            ],
        )
    )
    print(f"target: < {TARGET_S:g} s wall -> {'met' if wall < TARGET_S else 'MISSED'}")
    _common.result(
        "backtest_speed",
        wall_seconds=wall,
        candles=s.candles,
        candles_per_second=s.candles / wall,
        symbols=s.market_symbols,
        days=s.days,
        trainings=trainings,
    )


if __name__ == "__main__":
    main()
