"""The trader's work per symbol at a candle close, the fetch left out: features, P(up), the
decision, for 500 symbols each with a model of its own, at 10 and 100 boosting iterations.
"load ms" is a model's unpickling plus the compiling of its forest, once per model version.

    python benchmarks/decide_cost.py [--symbols 500] [--iters 10 100] [--rounds 9]

P(up) two ways on the same rows, interleaved round by round in this process: "predict_proba"
is scikit-learn's on one row (how `LoadedModel.prob_up` answered before the compiled forest),
"prob_up" is `LoadedModel.prob_up` now (models/forest.py). Every P(up) of the two is checked
equal, to the bit. Times are this thread's CPU time (the machine is shared: wall time would
measure the other jobs), per symbol, median and range over the rounds; "a candle" is the
whole loop over the symbols: features + P(up) + `decide`. 100 iterations is the settings'
default (`training.max_iter`); the test models of decision_latency.py have 10.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common
import numpy as np

from config.settings import Settings
from models.artifacts import LoadedModel
from models.features import LOOKBACK_BARS
from models.forest import forest_of
from models.synthetic import random_walk_candles
from policy.risk import decide, limits_from_settings
from tests.harness import T0

WINDOW = LOOKBACK_BARS + 5  # the market-data actor's window


def copies(model: LoadedModel, n: int) -> tuple[list[LoadedModel], float]:
    """`n` models, each its own copy (as `n` symbols' models are), prepared as the model
    store's load does; and the time per model in ms (unpickling and compiling its forest)."""
    start = time.perf_counter()
    models = _common.model_copies(model, n)
    return models, (time.perf_counter() - start) / n * 1e3


def old_prob_up(model: LoadedModel, features: np.ndarray) -> float:
    """`LoadedModel.prob_up` before the compiled forest: predict_proba on the row."""
    x = np.asarray(features, dtype=np.float64).reshape(1, -1)
    if not np.isfinite(x).all():
        x = np.where(np.isfinite(x), x, np.nan)
    return float(model.estimator.predict_proba(x)[0, 1])


def cpu_s(fn: Callable[[], Any]) -> float:
    start = time.thread_time()
    fn()
    return time.thread_time() - start


def measure(max_iter: int, symbols: int, rounds: int, models_dir: Path) -> dict[str, Any]:
    base = _common.trained_model(models_dir, max_iter)
    models, compile_ms = copies(base, symbols)
    strategy = base.strategy
    series = random_walk_candles(symbols + WINDOW, seed=2, momentum=0.3)
    windows = [series[i : i + WINDOW] for i in range(symbols)]
    rows = [strategy.latest_features(w) for w in windows]
    before = [old_prob_up(m, r) for m, r in zip(models, rows, strict=True)]
    now = [m.prob_up(r) for m, r in zip(models, rows, strict=True)]
    if before != now:
        bad = sum(a != b for a, b in zip(before, now, strict=True))
        raise SystemExit(f"{max_iter} iterations: {bad} of {symbols} P(up) differ")
    limits = limits_from_settings(Settings().trading, 60.0)

    def candle(prob: Callable[[LoadedModel, np.ndarray], float]) -> None:
        for i, window in enumerate(windows):
            p = prob(models[i], strategy.latest_features(window))
            decide(
                symbol="X",
                prob_up=p,
                price=float(window[-1, 4]),
                position=None,
                open_positions=0,
                paused=False,
                limits=limits,
                now=T0,
            )

    samples: dict[str, list[float]] = {k: [] for k in ("features", "old", "new", "c_old", "c_new")}
    pairs = list(zip(models, rows, strict=True))
    us = 1e6 / symbols  # per symbol, in microseconds
    for _ in range(rounds):
        samples["features"].append(
            cpu_s(lambda: [strategy.latest_features(w) for w in windows]) * us
        )
        samples["old"].append(cpu_s(lambda: [old_prob_up(m, r) for m, r in pairs]) * us)
        samples["new"].append(cpu_s(lambda: [m.prob_up(r) for m, r in pairs]) * us)
        samples["c_old"].append(cpu_s(lambda: candle(old_prob_up)) * 1e3)
        samples["c_new"].append(cpu_s(lambda: candle(LoadedModel.prob_up)) * 1e3)
    forest = forest_of(models[0].estimator)
    assert forest is not None
    nodes = len(forest.threshold)
    return {
        "max_iter": max_iter,
        "symbols": symbols,
        "compile_ms": compile_ms,
        "forest_kb": sum(a.nbytes for a in vars(forest).values() if hasattr(a, "nbytes")) / 1e3,
        "nodes": nodes,
        **{k: summary(v) for k, v in samples.items()},
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"median": float(np.median(values)), "min": min(values), "max": max(values)}


def spread(s: dict[str, float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--iters", type=int, nargs="+", default=[10, Settings().training.max_iter])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    cap = _common.thread_cap()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [measure(i, args.symbols, args.rounds, Path(tmp)) for i in args.iters]
    cap.restore_original_limits()
    print(
        f"{args.symbols} symbols, a model each; CPU time of this thread, median (range) of "
        f"{args.rounds} interleaved rounds; every P(up) equal both ways"
    )
    print(
        _common.table(
            [
                "iterations",
                "features us",
                "predict_proba us",
                "prob_up us",
                "P(up) x",
                "a candle before ms",
                "a candle now ms",
                "load ms",
                "forest KB",
            ],
            [
                (
                    r["max_iter"],
                    spread(r["features"]),
                    spread(r["old"]),
                    spread(r["new"]),
                    f"{r['old']['median'] / r['new']['median']:.1f}",
                    spread(r["c_old"]),
                    spread(r["c_new"]),
                    r["compile_ms"],
                    r["forest_kb"],
                )
                for r in runs
            ],
        )
    )
    _common.result(
        "decide_cost",
        runs=runs,
        candle_ms={str(r["max_iter"]): r["c_new"]["median"] for r in runs},
        candle_before_ms={str(r["max_iter"]): r["c_old"]["median"] for r in runs},
    )


if __name__ == "__main__":
    main()
