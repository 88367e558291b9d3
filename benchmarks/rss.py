"""6. Peak memory (RSS) with 50 symbols.

    python benchmarks/rss.py [--symbols 50] [--hours 1] [--window-days 14] [--pools process thread]

Runs the whole bot (`supervisor.simulate`) on 50 synthetic symbols for `--hours`
of virtual time: ~47 trainings at startup, then every active symbol traded on
each 1m candle, all models in memory. Each variant runs in a fresh process, so
`resource.getrusage(RUSAGE_SELF).ru_maxrss` is that variant's own peak:
- process pool (the live bot's layout, the default): the bot's process, plus the
  largest peak (VmHWM) of the forkserver's worker processes, read from /proc;
- thread pool (`--pools process thread`): the fits run inside the bot's process,
  so its peak includes training (as in `simulate`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import _common

CHILD = "child"


def _descendants_hwm_mb() -> float:
    """Largest VmHWM among processes whose parent is a child of this process (pool workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    me = os.getpid()
    children = {pid for pid, ppid in parents.items() if ppid == me}
    grandchildren = {pid for pid, ppid in parents.items() if ppid in children}
    worst = 0.0
    for pid in children | grandchildren:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    worst = max(worst, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return worst


def child(pool: str, symbols: int, hours: float, window_days: float) -> None:
    import msgspec

    import supervisor
    from config.settings import load_settings

    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    settings = load_settings(_common.ROOT / "settings.yaml")
    training = msgspec.structs.replace(settings.training, window_days=window_days)
    settings = msgspec.structs.replace(settings, training=training)
    workers_mb = [0.0]
    steps = [0]

    def on_step(done: float, wall: float) -> None:
        steps[0] += 1
        if pool == "process" and steps[0] % 20 == 1:
            workers_mb[0] = max(workers_mb[0], _descendants_hwm_mb())

    cap = _common.thread_cap()
    summary = supervisor.simulate(
        settings,
        days=hours / 24,
        symbols=symbols,
        pool_kind="process" if pool == "process" else "thread",
        on_step=on_step,
    )
    cap.restore_original_limits()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    active = sum(s.final_state == "ACTIVE" for s in summary.symbols.values())
    print(
        "CHILD "
        + json.dumps(
            {
                "baseline_mb": baseline_mb,
                "peak_mb": peak_mb,
                "workers_mb": workers_mb[0],
                "active": active,
                "trainings": sum(s.trainings_started for s in summary.symbols.values()),
                "wall_s": summary.wall_seconds,
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--window-days", type=float, default=14)
    parser.add_argument("--pools", nargs="+", choices=("process", "thread"), default=["process"])
    args = parser.parse_args()
    rows = []
    results = {}
    for pool in args.pools:
        proc = subprocess.run(
            [
                *(sys.executable, __file__, CHILD, pool),
                *(str(args.symbols), str(args.hours), str(args.window_days)),
            ],
            cwd=_common.ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        line = next((x for x in proc.stdout.splitlines() if x.startswith("CHILD ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"{pool} variant failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
        r = json.loads(line.removeprefix("CHILD "))
        results[pool] = r
        rows.append(
            (
                f"{pool} pool",
                r["active"],
                r["trainings"],
                r["baseline_mb"],
                r["peak_mb"],
                r["workers_mb"] if pool == "process" else "-",
                r["wall_s"],
            )
        )
    print(
        f"{args.symbols} symbols, {args.hours:g} simulated hour(s), trainings on "
        f"{args.window_days:g} days of 1m candles; RSS in MB"
    )
    print(
        _common.table(
            [
                "variant",
                "active",
                "trainings",
                "after imports",
                "bot peak",
                "worker peak",
                "wall s",
            ],
            rows,
        )
    )
    _common.result("rss", **{pool: r for pool, r in results.items()})


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    else:
        main()
