"""Every benchmark, one after the other, then the targets table.

    python benchmarks/run_all.py [--only messaging tick_latency ...]

Each benchmark runs in its own fresh process (so peak RSS and imports are its
own) and prints its table; this script collects their RESULT lines and prints
what was measured against the targets of issue 6. Numbers depend on the
machine and on what else runs on it: ratios measured side by side in one run
are what to compare. About 3-4 minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "messaging",
    "tick_latency",
    "coverage_tick",
    "sim_speed",
    "backtest_speed",
    "startup",
    "rss",
    "decision_latency",
    "decide_cost",
    "admin_stall",
]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import sklearn

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} cores, {model}; Python {platform.python_version()}, "
        f"numpy {numpy.__version__}, scikit-learn {sklearn.__version__}; "
        f"load average {load:.2f} at start"
    )


def run(name: str) -> tuple[dict[str, Any] | None, float]:
    print(f"\n=== {name} " + "=" * (60 - len(name)), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(HERE / f"{name}.py")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.perf_counter() - start
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
        else:
            print(line)
    if proc.returncode != 0:
        print(f"{name} FAILED (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    print(f"({elapsed:.0f} s)", flush=True)
    return result, elapsed


def targets(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(what, measured, target, verdict) for each target of the issue that was measured."""
    rows: list[tuple[str, str, str, str]] = []

    def add(what: str, value: float, text: str, target: str, ok: bool) -> None:
        verdict = "" if target == "(info)" else "met" if ok else "MISSED"
        rows.append((what, text.format(value), target, verdict))

    if m := results.get("messaging"):
        v = m["base_actor_vs_pykka"]
        add("BaseActor messaging vs raw pykka", v, "{:.2f}x", ">= 0.80x", v >= 0.8)
    if t := results.get("tick_latency"):
        v = t["pool_1_worker_ratio"]
        add("trader p99, pool training / idle", v, "{:.2f}x", "<= 1.5x", v <= 1.5)
        cycles = t["pool_1_worker_cycle_ratios"]
        add(
            "  per cycle: median (range)",
            float(np.median(cycles)),
            f"{{:.2f}}x ({min(cycles):.2f}-{max(cycles):.2f})",
            "(info)",
            True,
        )
        v = t["spin_ratio"]
        add("  same, a spinning process instead", v, "{:.2f}x", "(info)", True)
        v = t["pool_2_workers_ratio"]
        add("  same, 2 workers (both cores busy)", v, "{:.2f}x", "(info)", True)
        v = t["thread_fit_ratio"]
        add("  same, fit in a thread (avoided)", v, "{:.2f}x", "(info)", True)
    if c := results.get("coverage_tick"):
        sizes = c["sizes"]
        if "1000" in sizes:
            v = sizes["1000"]["p50_ms"]
            add("coverage tick, 1,000 symbols (p50)", v, "{:.1f} ms", "< 20 ms", v < 20)
    if s := results.get("sim_speed"):
        for window, r in s["windows"].items():
            v = r["speedup"]
            add(f"simulation, 20 symbols, {window}-day fits", v, "{:,.0f}x", ">= 2,000x", v >= 2000)
            v = r["steady_speedup"]
            add("  after the startup trainings", v, "{:,.0f}x", "(info)", True)
    if b := results.get("backtest_speed"):
        v = b["wall_seconds"]
        what = f"backtest, {b['symbols']} real series x {b['days']:g} days of 5m"
        add(what, v, "{:.1f} s", "< 30 s", v < 30)
        v = b["candles_per_second"]
        add("  candles replayed per second", v, "{:,.0f}", "(info)", True)
    if st := results.get("startup"):
        v = st["first_tick_median_s"]
        add("start to first trading tick", v, "{:.2f} s", "< 3 s", v < 3)
    if r := results.get("rss", {}).get("process"):
        v = r["peak_mb"]
        add("peak RSS, 50 symbols, bot process", v, "{:.0f} MB", "(info)", True)
        v = r["workers_mb"]
        add("  training worker peak", v, "{:.0f} MB", "(info)", True)
    if d := results.get("decision_latency"):
        v = d["p99_ms"]
        add("close to last decision, 500 symbols, p99", v, "{:.0f} ms", "< 1000 ms", v < 1000)
        v = d["weight_per_min"]
        add("  request weight a minute at 500 symbols", v, "{:,.0f}", "<= 3,000", v <= 3000)
    if dc := results.get("decide_cost"):
        for trees, v in dc["candle_ms"].items():
            before = dc["candle_before_ms"][trees]
            what = f"deciding 500 symbols, {trees} trees, CPU"
            add(what, v, f"{{:.0f}} ms (predict_proba: {before:.0f})", "(info)", True)
    if a := results.get("admin_stall"):
        v = a["p99_ms"]
        add("admin status p99, exchange stalled 10 s", v, "{:.0f} ms", "< 100 ms", v < 100)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=BENCHMARKS)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import _common

    print(machine())
    results: dict[str, dict[str, Any]] = {}
    total = 0.0
    for name in args.only:
        result, elapsed = run(name)
        total += elapsed
        if result is not None:
            results[name] = result
    print("\n=== targets " + "=" * 53)
    print(_common.table(["measure", "measured", "target", ""], targets(results)))
    print(f"\nall benchmarks: {total:.0f} s")


if __name__ == "__main__":
    main()
