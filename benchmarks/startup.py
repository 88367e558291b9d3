"""5. Start to first trading tick, with models on disk.

    python benchmarks/startup.py [--symbols 6] [--runs 3]

Prepares a data folder with a published model for each of `--symbols`
long-history symbols, then launches a fresh `python` that imports the bot, builds
the System from settings (paper exchange, static universe of those symbols),
starts it, and runs it until the trader's first signal. Timed from the launch of
the process (interpreter start and imports included) to that first signal; the
child reports when each phase ended. The wait for the next candle to close (up
to a minute on a wall clock) is a property of the schedule, not a cost: the
child runs on a VirtualClock and jumps to the first trade tick. Target: < 3 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT", "LINK/USDT"]
CHILD = "child"


def prepare(data_dir: Path, symbols: list[str]) -> Path:
    from exchange.synthetic import SyntheticMarket
    from models import artifacts
    from models.training import TrainJob, TrainParams, run_training

    models_dir = data_dir / "models"
    market = SyntheticMarket(anchor_ms=int(_common.T0 * 1000))
    end = int(_common.T0 * 1000)
    for symbol in symbols:
        candles = market.ohlcv(symbol, "1m", end - 14 * 86_400_000, end)
        staging = artifacts.new_staging_dir(models_dir)
        job = TrainJob(
            symbol,
            "1m",
            candles,
            str(staging),
            TrainParams(),  # the settings defaults
            trained_at_ms=end,
        )
        run_training(job)
        artifacts.publish(models_dir, staging)
    settings = data_dir / "settings.yaml"
    settings.write_text(
        f"data_dir: {data_dir}\n"
        f"universe: {{mode: static, symbols: [{', '.join(symbols)}]}}\n"
        "logging: {level: WARNING}\n"
    )
    return settings


def child(settings_path: str) -> None:
    """In the fresh process: print 'PHASE <name> <seconds since the parent launched us>'."""
    launched = float(os.environ["BENCH_LAUNCHED_AT"])

    def phase(name: str) -> None:
        print(f"PHASE {name} {time.time() - launched:.4f}", flush=True)

    phase("interpreter")
    import threading

    from threadpoolctl import threadpool_limits

    from actors.clock import VirtualClock
    from actors.messages import SignalProduced
    from app import builders
    from app import system as system_module
    from config.settings import load_settings
    from models.pool import TrainingPool

    phase("imports")
    cap = threadpool_limits(limits=1)
    settings = load_settings(settings_path)
    clock = VirtualClock(start=_common.T0)
    exchange = builders.build_exchange(settings, clock)
    system = system_module.System(settings, clock, exchange, TrainingPool(kind="process"))
    first_signal = threading.Event()

    class Probe:
        def tell(self, message: object) -> None:
            if isinstance(message, SignalProduced):
                first_signal.set()

    system.events.subscribe("bench", Probe())
    system.start()
    system.runtime.wait_quiet()
    phase("started")  # models loaded, every symbol ACTIVE
    while not first_signal.is_set():
        due = clock.next_due()
        assert due is not None
        clock.advance_to(due)
        system.runtime.wait_quiet()
    phase("first_tick")
    system.stop()
    cap.restore_original_limits()


def launch(settings: Path) -> dict[str, float]:
    env = {**os.environ, "BENCH_LAUNCHED_AT": repr(time.time()), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, __file__, CHILD, str(settings)],
        cwd=_common.ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed:\n{proc.stdout}\n{proc.stderr}")
    phases = {}
    for line in proc.stdout.splitlines():
        if line.startswith("PHASE "):
            _, name, seconds = line.split()
            phases[name] = float(seconds)
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=len(SYMBOLS))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = prepare(Path(tmp), SYMBOLS[: args.symbols])
        runs = [launch(settings) for _ in range(args.runs)]
    names = ["interpreter", "imports", "started", "first_tick"]
    labels = {
        "interpreter": "python running",
        "imports": "imports done (pandas, sklearn, pykka)",
        "started": "models loaded, symbols ACTIVE",
        "first_tick": "first trading signal",
    }
    rows = []
    for name in names:
        values = sorted(run[name] for run in runs)
        rows.append((labels[name], values[len(values) // 2], values[-1]))
    print(f"{args.symbols} symbols with models on disk; {args.runs} fresh processes")
    print(_common.table(["since launch", "median s", "worst s"], rows))
    best = sorted(run["first_tick"] for run in runs)
    _common.result(
        "startup",
        first_tick_median_s=best[len(best) // 2],
        first_tick_worst_s=best[-1],
        phases={name: sorted(r[name] for r in runs)[len(runs) // 2] for name in names},
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        child(sys.argv[2])
    else:
        main()
