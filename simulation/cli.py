"""`python supervisor.py simulate ...`: the command line of the simulation.

`add_parser` adds the subcommand to the supervisor's parser; `command` runs it:
checks the arguments, sets up logging in virtual time with a progress bar, runs
`simulate()` and writes the report.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from actors.clock import VirtualClock
from app.preflight import PreflightError, check_output_dir
from config.settings import SettingsError, load_settings
from core.timefmt import format_utc
from policy.lifecycle import DAY_S
from simulation import report as sim_report
from simulation.progress import run_with_progress
from simulation.runner import SIM_START
from simulation.simulate import simulate
from simulation.summary import Summary

log = logging.getLogger("tradeactors.simulation")


def add_parser(commands: Any) -> None:
    """The `simulate` subcommand, on the supervisor's subparsers."""
    sim = commands.add_parser(
        "simulate",
        help="run the whole bot on virtual time and write a report",
        description="Run the whole bot on virtual time, as fast as the machine allows; "
        "writes OUT/summary.json, OUT/report.html and OUT/simulation.log.",
    )
    sim.add_argument("--days", type=float, default=7.0, help="simulated days (default: 7)")
    sim.add_argument(
        "--symbols",
        type=int,
        default=None,
        help="synthetic symbols; up to 10 from the built-in market, more are generated "
        "(default: the built-in 10)",
    )
    sim.add_argument("--seed", type=int, default=None, help="market seed (default: settings)")
    sim.add_argument(
        "--settings", default="settings.yaml", help="settings file (default: %(default)s)"
    )
    sim.add_argument("--out", default="sim-out", help="report folder (default: %(default)s)")
    sim.add_argument(
        "--pool", choices=("thread", "process"), default="thread", help="training pool kind"
    )
    sim.add_argument(
        "--workers", type=int, default=None, help="fits in parallel (default: CPU cores)"
    )
    sim.add_argument(
        "--training-backend",
        choices=("processes", "dask"),
        default=None,
        help="dask: fits on the Dask cluster of training.dask (docs/distributed.md), "
        "--pool is then ignored (default: training.backend of the settings)",
    )
    sim.add_argument(
        "--train-days",
        type=float,
        default=None,
        help="history per training, overriding training.window_days (faster fits, "
        "less faithful models)",
    )


def command(args: Any) -> int:
    """`python supervisor.py simulate`: 0 when the run kept every invariant to the end, 1 if
    not (or the bot stopped early), 2 on bad arguments, 130 on Ctrl-C."""
    try:
        settings = load_settings(args.settings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    problems = []
    if not args.days > 0:
        problems.append(f"--days must be > 0, got {args.days:g}")
    if args.symbols is not None and args.symbols < 1:
        problems.append(f"--symbols must be >= 1, got {args.symbols}")
    if args.workers is not None and args.workers < 1:
        problems.append(f"--workers must be >= 1, got {args.workers}")
    if args.train_days is not None:
        if args.train_days > 0:
            training = msgspec.structs.replace(settings.training, window_days=args.train_days)
            settings = msgspec.structs.replace(settings, training=training)
        else:
            problems.append(f"--train-days must be > 0, got {args.train_days:g}")
    if args.training_backend is not None:
        training = msgspec.structs.replace(settings.training, backend=args.training_backend)
        settings = msgspec.structs.replace(settings, training=training)
    out = Path(args.out)
    try:
        check_output_dir(out, ("summary.json", "report.html", "simulation.log"))
    except PreflightError as exc:
        problems.append(str(exc))
    if problems:
        print("simulate: " + "; ".join(problems), file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    clock = VirtualClock(start=SIM_START)

    def work(on_step: Callable[[float, float], None]) -> Summary:
        log.info(
            "Simulating %g days from %s; report in %s",
            args.days,
            format_utc(SIM_START, seconds=True),
            out,
        )
        return simulate(
            settings,
            days=args.days,
            symbols=args.symbols,
            seed=args.seed,
            pool_kind=args.pool,
            workers=args.workers,
            clock=clock,
            on_step=on_step,
        )

    summary = run_with_progress(
        "simulate",
        work,
        total_s=args.days * DAY_S,
        clock=clock,
        level=settings.logging.level,
        log_file=out / "simulation.log",
    )
    if summary is None:
        return 130
    sim_report.write(out, summary)
    print(sim_report.format_summary(summary, out))
    return 1 if summary.invariant_violations or summary.stopped_early else 0
