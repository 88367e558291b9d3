"""4. Simulation speed-up: 1 simulated day of 20 symbols on 1-minute candles.

    python benchmarks/sim_speed.py [--days 1] [--symbols 20] [--window-days 90 14]

Runs `supervisor.simulate` (what `python supervisor.py simulate` runs, without
the report) with settings.yaml's defaults: 10 built-in symbols plus 10 generated
ones, every active symbol traded on every 1m candle (fetch, features, a
HistGradientBoosting predict). Once per training window in `--window-days` (the
settings' 90 days, and the 14 of `simulate --train-days 14`). Reports the whole
run's speed-up (simulated / wall seconds) and its parts: the startup instant
(every startup training; virtual time stands still during fits) and the rest.
Target: >= 2,000x real time.
"""

from __future__ import annotations

import argparse

import _common
import msgspec

import supervisor
from config.settings import Settings, load_settings
from simulation.summary import Summary


def run(settings: Settings, days: float, symbols: int, pool: str) -> tuple[Summary, float]:
    """The summary, and the wall seconds of the startup instant."""
    progress: list[tuple[float, float]] = []  # (virtual seconds done, wall seconds)
    summary = supervisor.simulate(
        settings,
        days=days,
        symbols=symbols,
        pool_kind="process" if pool == "process" else "thread",
        on_step=lambda done, wall: progress.append((done, wall)),
    )
    # the first step past the startup instant: every startup training is done by then
    return summary, next(wall for done, wall in progress if done > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--window-days", type=float, nargs="+", default=[90, 14])
    parser.add_argument("--pool", choices=("thread", "process"), default="thread")
    args = parser.parse_args()
    base = load_settings(_common.ROOT / "settings.yaml")
    cap = _common.thread_cap()
    rows = []
    results = {}
    for window in args.window_days:
        training = msgspec.structs.replace(base.training, window_days=window)
        summary, startup_wall = run(
            msgspec.structs.replace(base, training=training), args.days, args.symbols, args.pool
        )
        rest_wall = summary.wall_seconds - startup_wall
        steady = summary.sim_seconds / rest_wall
        trainings = sum(s.trainings_started for s in summary.symbols.values())
        rows.append(
            (
                f"{window:g} days",
                trainings,
                summary.signals,
                summary.wall_seconds,
                startup_wall,
                summary.speedup,
                steady,
                len(summary.invariant_violations),
            )
        )
        results[f"{window:g}"] = {
            "speedup": summary.speedup,
            "steady_speedup": steady,
            "wall_seconds": summary.wall_seconds,
            "startup_wall_seconds": startup_wall,
            "trainings": trainings,
        }
    cap.restore_original_limits()
    print(
        f"{args.days:g} simulated day(s) of {args.symbols} symbols on 1m candles, "
        f"{args.pool} training pool; speed-up = simulated s / wall s"
    )
    print(
        _common.table(
            [
                "training window",
                "trainings",
                "signals",
                "wall s",
                "startup wall s",
                "speed-up",
                "after startup",
                "violations",
            ],
            rows,
        )
    )
    _common.result("sim_speed", windows=results)


if __name__ == "__main__":
    main()
