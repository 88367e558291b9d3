"""`python supervisor.py backtest ...`: the command line of the backtest.

`add_parser` adds the subcommand to the supervisor's parser; `command` checks the
arguments, settings and candles, sets up logging in virtual time with a progress
bar, runs `backtest()` and writes the report (summary.json, report.html, backtest.log).
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
from core.timeframes import timeframe_ms
from exchange.replay import ReplayMarket
from policy.lifecycle import DAY_S
from simulation import report as sim_report
from simulation.backtest import Backtest, backtest
from simulation.backtest_inputs import (
    BacktestError,
    Window,
    backtest_settings,
    load_market,
    parse_utc,
    replay_window,
    start_s,
    utc_ms,
)
from simulation.backtest_report import format_backtest, returns_html
from simulation.progress import run_with_progress
from storage.candle_files import CandleFileError

log = logging.getLogger("tradeactors.backtest")


def add_parser(commands: Any) -> None:
    """The `backtest` subcommand, on the supervisor's subparsers."""
    bt = commands.add_parser(
        "backtest",
        help="replay stored candles through the whole bot and write a report",
        description="Replay stored candles (a folder of CSV files, or the candle cache that "
        "`download` fills) through the whole bot on virtual time; writes OUT/summary.json, "
        "OUT/report.html and OUT/backtest.log (docs/backtesting.md).",
    )
    bt.add_argument(
        "--settings", default="settings.yaml", help="settings file (default: %(default)s)"
    )
    bt.add_argument(
        "--candles",
        type=Path,
        help="folder of EXCHANGE_BASE-QUOTE_TF.csv[.gz] files (default: the candle cache of "
        "data_dir, as `download` filled it)",
    )
    bt.add_argument("--from", dest="start", help="start, UTC: 2018-01-15 or 2018-01-15T12:00")
    bt.add_argument("--to", dest="end", help="end, UTC (default: the last candle's close)")
    bt.add_argument("--symbols", help="only these, e.g. ETH/BTC,LTC/BTC (default: every file)")
    bt.add_argument("--timeframe", help="candles to trade on (default: the settings')")
    bt.add_argument("--out", default="backtest-out", help="report folder (default: %(default)s)")
    bt.add_argument(
        "--pool", choices=("thread", "process"), default="thread", help="training pool kind"
    )
    bt.add_argument("--workers", type=int, default=None, help="fits in parallel (default: cores)")


def _log_data(market: ReplayMarket, window: Window) -> None:
    for symbol in market.symbols():
        gaps = market.gaps(symbol)
        rows = market.rows(symbol)
        missing = sum(g.missing for g in gaps)
        longest = max(gaps, key=lambda g: g.missing, default=None)
        log.info(
            "%s: %s candles from %s to %s%s",
            symbol,
            f"{len(rows):,}",
            utc_ms(rows[0, 0]),
            utc_ms(market.end_ms(symbol)),
            ""
            if longest is None
            else f"; {len(gaps)} gaps, {missing} candles missing (longest {longest.missing} "
            f"from {utc_ms(longest.start_ms)}): skipped, not interpolated",
        )
    log.info(
        "Replaying %s to %s (%.2f days)",
        utc_ms(window.start_ms),
        utc_ms(window.end_ms),
        window.seconds / DAY_S,
    )


def command(args: Any) -> int:
    """`python supervisor.py backtest`: 0 when every invariant held to the end, 1 if not (or
    the bot stopped early), 2 on bad arguments, settings or candles, 130 on Ctrl-C."""
    try:
        settings = load_settings(args.settings)
        if args.timeframe:
            timeframe_ms(args.timeframe)
            settings = msgspec.structs.replace(settings, timeframe=args.timeframe)
        if args.workers is not None and args.workers < 1:
            raise BacktestError(f"--workers must be >= 1, got {args.workers}")
        symbols = (
            [s.strip() for s in args.symbols.split(",") if s.strip()] if args.symbols else None
        )
        market, source, exchange = load_market(settings, args.candles, symbols)
        window = replay_window(
            market,
            settings.timeframe,
            None if args.start is None else parse_utc(args.start),
            None if args.end is None else parse_utc(args.end),
        )
        backtest_settings(settings, market, settings.data_dir)  # refuse bad settings now
        out = Path(args.out)
        check_output_dir(out, ("summary.json", "report.html", "backtest.log"))
    except (SettingsError, CandleFileError, ValueError, PreflightError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)  # ValueError: BacktestError, a timeframe
        return 2
    out.mkdir(parents=True, exist_ok=True)
    clock = VirtualClock(start=start_s(settings, window))

    def work(on_step: Callable[[float, float], None]) -> Backtest:
        _log_data(market, window)
        return backtest(
            settings,
            market,
            window=window,
            source=source,
            exchange_name=exchange,
            pool_kind=args.pool,
            workers=args.workers,
            clock=clock,
            on_step=on_step,
        )

    result = run_with_progress(
        "backtest",
        work,
        total_s=window.seconds,
        clock=clock,
        level=settings.logging.level,
        log_file=out / "backtest.log",
    )
    if result is None:
        return 130
    summary = result.summary
    title = (
        f"Backtest: {summary.market_symbols} symbols, {summary.timeframe}, "
        f"{summary.start} to {summary.end}"
    )
    sim_report.write(out, summary, title=title, extra_html=returns_html(summary))
    print(format_backtest(summary, out))
    return 1 if summary.invariant_violations or summary.stopped_early else 0
