"""`python supervisor.py backtest`: the whole bot on virtual time over stored real candles.

The same `System` as a live run and as `simulate` — supervisor, coverage actor,
trainers, model store, trader, the simulation's scheduler and invariant monitor —
on a `VirtualClock`, with the paper exchange trading on a `ReplayMarket` of the
stored candles instead of the synthetic market:

- the universe is the candles' symbols (static); a symbol is listed from its first
  candle, so coverage sees its history grow and `min_history_days` blocks it, then
  admits it, exactly as live;
- trainers download their window from the paper exchange, which serves closed
  candles only up to the virtual now: they train on the past only, and the trader
  trades what follows;
- a market order fills at the close of the last closed candle (the one the trader
  decided on) moved by `slippage_bps` against it, and pays `fee_rate`;
- a gap in the data is a gap for the bot too: no candle, no decision; nothing is
  interpolated.

`backtest()` runs it (from code and tests; the exchange can be swapped for the
same candles served another way: a live paper exchange over a fake exchange);
`summarize_backtest` adds the returns to the simulation's summary; `add_parser`
and `command` are the command line.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
from threadpoolctl import threadpool_limits

from actors.base import Runtime
from actors.clock import VirtualClock
from actors.messages import SignalProduced
from app.builders import build_paper_exchange, public_data_name
from app.logs import configure_logging
from app.supervision import Supervisor
from app.system import System
from config.settings import Settings, SettingsError, load_settings
from core.timefmt import format_utc
from core.timeframes import timeframe_ms
from exchange.port import ExchangePort
from exchange.replay import ReplayMarket
from policy.lifecycle import DAY_S
from simulation import report as sim_report
from simulation.monitor import InvariantMonitor
from simulation.pool import DeterministicPool
from simulation.progress import ProgressAwareHandler, ProgressBar
from simulation.report import Summary, SymbolSummary
from simulation.runner import SimRun
from simulation.runner import run as run_loop
from simulation.summary import summarize, symbol_pnl
from storage.candle_files import CandleFileError, read_cache, read_candle_folder
from storage.candles import CandleCache
from storage.ledger import OrderRow

log = logging.getLogger("tradeactors.backtest")

# summary fields that depend on the machine, not on the inputs
WALL_FIELDS = (*sim_report.WALL_FIELDS, "candles_per_second")

TRAINING_NOTE = (
    "Trains as settings.training says, on the candles before the virtual now only. Fits "
    "run while virtual time stands still, so they cost wall time only; results are handed "
    "back in symbol order, so every run of the same inputs decides the same."
)


class BacktestError(ValueError):
    """Inputs a backtest cannot run on; the message is one line for the user."""


class SymbolResult(SymbolSummary, kw_only=True):
    """A symbol's part of a backtest: the simulation's fields plus what it earned."""

    candles: int  # replayed: closed inside the window
    missing_candles: int  # gaps inside the window (skipped, not interpolated)
    net_return_pct: float  # pnl as a share of the starting balance
    first_trade_at: str | None  # UTC of its first fill
    # and, from SymbolSummary, with the backtest's meaning: buy_hold_return_pct (last close /
    # first open inside the window - 1), fees_quote, round_trips (positions closed)


class BacktestSummary(Summary, kw_only=True):
    """`simulate`'s summary fields (`symbols` holds `SymbolResult`s) plus the returns."""

    source: str  # the folder or cache the candles came from
    exchange: str  # whose candles they are
    quote: str  # the currency of balances, fees and profits
    timeframe: str
    end: str  # UTC, the end of the window
    candles: int  # replayed, every symbol
    candles_per_second: float  # replayed candles per wall second
    net_return_pct: float  # final equity / starting balance - 1
    # and, from Summary: buy_hold_return_pct (the mean of the symbols': equal weights held
    # over the window), fees_quote, round_trips


@dataclass(frozen=True)
class Window:
    """What is replayed: virtual time runs from `start_ms` to `end_ms`."""

    start_ms: int
    end_ms: int

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


@dataclass
class Backtest:
    """A backtest's summary, and what the bot decided (for tests and tools)."""

    summary: BacktestSummary
    orders: list[OrderRow]
    signals: list[SignalProduced]


# --- inputs --------------------------------------------------------------------------


def replay_window(
    market: ReplayMarket, timeframe: str, from_ms: int | None = None, to_ms: int | None = None
) -> Window:
    """From the first candle (or `from_ms`) to the last close (or `to_ms`), on candle bounds.

    Candles before `from_ms` are history the exchange already has at the start.
    """
    tf = timeframe_ms(timeframe)
    first = min(market.listed_ms(s) for s in market.symbols())
    last = max(market.end_ms(s) for s in market.symbols())
    start = first if from_ms is None else max(first, from_ms)
    end = last if to_ms is None else min(last, to_ms)
    start = -(-start // tf) * tf
    end -= end % tf
    if end <= start:
        raise BacktestError(
            f"nothing to replay between {utc_ms(start)} and {utc_ms(end)}: the candles run "
            f"from {utc_ms(first)} to {utc_ms(last)}"
        )
    return Window(start, end)


def backtest_settings(settings: Settings, market: ReplayMarket, data_dir: str) -> Settings:
    """`settings` for a replay of `market`: its symbols as a static universe, a fresh data folder.

    BacktestError when the candles cannot be traded with these settings.
    """
    quotes = sorted({symbol.partition("/")[2] for symbol in market.symbols()})
    if len(quotes) != 1:
        raise BacktestError(f"the candles have several quote currencies ({', '.join(quotes)})")
    quote = quotes[0]
    if settings.exchange.quote != quote:
        raise BacktestError(
            f"the candles are quoted in {quote} but exchange.quote is "
            f"{settings.exchange.quote}: set exchange.quote: {quote}, with "
            f"exchange.starting_balance and trading.stake_quote in {quote}"
        )
    tf = timeframe_ms(settings.timeframe)
    if tf % market.base_ms != 0:
        raise BacktestError(
            f"timeframe {settings.timeframe} is finer than the candles' {market.timeframe}: "
            f"use --timeframe {market.timeframe} or a settings file with "
            f"timeframe: {market.timeframe}"
        )
    replace = msgspec.structs.replace
    return replace(
        settings,
        data_dir=data_dir,
        universe=replace(settings.universe, mode="static", symbols=tuple(market.symbols())),
    )


def replay_exchange(settings: Settings, clock: VirtualClock, market: ReplayMarket) -> ExchangePort:
    """The backtest's exchange: the paper exchange trading on the replayed candles."""
    return build_paper_exchange(market, clock, settings.exchange)


def start_s(settings: Settings, window: Window) -> float:
    """When the bot starts: the window's start plus the trader's candle delay."""
    return window.start_ms / 1000 + settings.trading.candle_delay_s


ExchangeFactory = Callable[[Settings, VirtualClock, ReplayMarket], ExchangePort]


class _Signals:
    """Collects every signal the trader produced (subscribed to the event topic)."""

    def __init__(self) -> None:
        self.signals: list[SignalProduced] = []
        self._lock = threading.Lock()

    def tell(self, message: Any) -> None:
        if isinstance(message, SignalProduced):
            with self._lock:
                self.signals.append(message)


# --- the run -------------------------------------------------------------------------


def backtest(
    settings: Settings,
    market: ReplayMarket,
    *,
    window: Window | None = None,
    source: str = "",
    exchange_name: str = "",
    pool_kind: Literal["thread", "process"] = "thread",
    workers: int | None = None,
    clock: VirtualClock | None = None,
    on_step: Callable[[float, float], None] | None = None,
    exchange: ExchangeFactory = replay_exchange,
) -> Backtest:
    """Replay `market` through the whole bot over `window` (default: all of it).

    The bot starts `trading.candle_delay_s` after the window's first close, when that
    candle is final, as the trader reads every candle: every timer then fires at the
    trader's instants (one step per candle). `clock`, if given, must stand there
    (`start_s`). Model files and the bot's own candle cache live in a temporary
    folder, deleted afterwards.
    """
    window = window or replay_window(market, settings.timeframe)
    workers = workers or os.cpu_count() or 1
    vclock = clock or VirtualClock(start=start_s(settings, window))
    if vclock.now() != start_s(settings, window):
        raise ValueError(f"the clock is at {vclock.now()}, not at the backtest's start")
    with tempfile.TemporaryDirectory(prefix="tradeactors-backtest-", dir=_scratch()) as data_dir:
        run_settings = backtest_settings(settings, market, data_dir)
        runtime = Runtime()  # shared by the pool and the System, as in simulate()
        pool = DeterministicPool(runtime, workers=workers, kind=pool_kind)
        monitor = InvariantMonitor(
            coverage_interval_s=run_settings.coverage.interval_s,
            min_history_days=run_settings.coverage.min_history_days,
            listed_at={s: market.listed_ms(s) / 1000 for s in market.symbols()},
            retry_after_s=run_settings.promotion.retry_after_days * DAY_S,
        )
        system = System(
            run_settings, vclock, exchange(run_settings, vclock, market), pool, runtime=runtime
        )
        signals = _Signals()
        system.events.subscribe("backtest", signals)
        run = run_loop(
            system,
            vclock,
            pool,
            window.seconds,
            monitor=monitor,
            sample_s=run_settings.heartbeat_s,
            supervisor=Supervisor(system).handle,
            on_step=on_step,
        )
    summary = summarize_backtest(
        run,
        run_settings,
        market,
        window,
        pool=pool_kind,
        workers=workers,
        source=source,
        exchange=exchange_name,
    )
    return Backtest(summary=summary, orders=run.orders, signals=signals.signals)


def _scratch() -> str | None:
    """Memory-backed storage when there is some: the run's database commits every order with
    an fsync (as live), which costs nothing there, and the folder is thrown away anyway."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


# --- the summary ---------------------------------------------------------------------


def utc_ms(time_ms: int | float) -> str:
    return format_utc(time_ms / 1000, seconds=True)


def _filled(rows: Iterable[OrderRow]) -> list[OrderRow]:
    return [r for r in rows if r.filled > 0 and r.average_price is not None]


def returns_by_symbol(
    market: ReplayMarket,
    window: Window,
    orders: Iterable[OrderRow],
    pnl: Mapping[str, float],
    starting_balance: float,
) -> dict[str, dict[str, Any]]:
    """Per symbol: candles and gaps in the window, returns, fees, round trips, first fill."""
    fills = _filled(orders)
    out: dict[str, dict[str, Any]] = {}
    for symbol in market.symbols():
        rows = market.candles(symbol, window.start_ms, window.end_ms - market.base_ms + 1)
        first = max(window.start_ms, market.listed_ms(symbol))
        last = min(window.end_ms, market.end_ms(symbol))
        slots = max(0, (last - first) // market.base_ms)
        mine = [r for r in fills if r.symbol == symbol]
        hold = float(rows[-1, 4] / rows[0, 1] - 1.0) if len(rows) else 0.0
        out[symbol] = {
            "candles": len(rows),
            "missing_candles": max(0, slots - len(rows)),
            "net_return_pct": round(100 * pnl.get(symbol, 0.0) / starting_balance, 4),
            "buy_hold_return_pct": round(100 * hold, 4),
            "fees_quote": round(sum(r.fee_quote for r in mine), 10),
            "round_trips": sum(r.side == "sell" for r in mine),
            "first_trade_at": (
                format_utc(min(r.created_at for r in mine), seconds=True) if mine else None
            ),
        }
    return out


def summarize_backtest(
    run: SimRun,
    settings: Settings,
    market: ReplayMarket,
    window: Window,
    *,
    pool: str,
    workers: int,
    source: str,
    exchange: str,
) -> BacktestSummary:
    # the last close of the window values what is still held (never a later price)
    last_prices = {}
    for symbol in market.symbols():
        row = market.last_closed(symbol, window.end_ms)
        if row is not None:
            last_prices[symbol] = float(row[4])
    run = dataclasses.replace(run, last_prices=last_prices)
    base = summarize(
        run, settings, seed=0, pool=pool, workers=workers, training_note=TRAINING_NOTE
    )
    pnl = symbol_pnl(run.orders, last_prices)
    extra = returns_by_symbol(market, window, run.orders, pnl, settings.exchange.starting_balance)
    symbols: dict[str, SymbolSummary] = {}
    for name, values in extra.items():
        known = base.symbols.get(name)
        fields = msgspec.structs.asdict(known) if known is not None else _unseen(run, name)
        symbols[name] = SymbolResult(**(fields | values))
    fields = msgspec.structs.asdict(base)
    fields["symbols"] = symbols
    fields["market_symbols"] = len(symbols)
    # the window replayed (the bot itself starts candle_delay_s into it)
    fields["start"] = utc_ms(window.start_ms)
    fields["days"] = round(window.seconds / DAY_S, 6)
    candles = sum(v["candles"] for v in extra.values())
    holds = [v["buy_hold_return_pct"] for v in extra.values()]
    start_balance = settings.exchange.starting_balance
    fields |= {
        "buy_hold_return_pct": round(sum(holds) / len(holds), 4) if holds else 0.0,
        "fees_quote": round(sum(v["fees_quote"] for v in extra.values()), 10),
        "round_trips": sum(v["round_trips"] for v in extra.values()),
    }
    return BacktestSummary(
        **fields,
        source=source,
        exchange=exchange,
        quote=settings.exchange.quote,
        timeframe=settings.timeframe,
        end=utc_ms(window.end_ms),
        candles=candles,
        candles_per_second=round(candles / run.wall_seconds, 1) if run.wall_seconds > 0 else 0.0,
        net_return_pct=round(100 * (base.final_equity / start_balance - 1), 4),
    )


def _unseen(run: SimRun, symbol: str) -> dict[str, Any]:
    """The simulation fields of a symbol the bot never saw (its data lies after the end)."""
    return {
        "final_state": run.final_states.get(symbol, "unlisted"),
        "trainings_started": 0,
        "trainings_failed": 0,
        "became_active_at": None,
        "orders": 0,
        "pnl": 0.0,
        "signals": 0,
        "timeline": [],
        "trainings": [],
    }


def format_backtest(summary: BacktestSummary, out: Path | None = None) -> str:
    """The digest printed at the end of a backtest."""
    s = summary
    quote = s.quote
    checks = ", ".join(f"{k} {v}" for k, v in s.coverage_checks_by_trigger.items())
    reloads = ", ".join(f"{k} {v}" for k, v in s.model_reloads_by_trigger.items())
    lines = [
        f"Backtest of {s.market_symbols} symbols ({s.exchange or 'stored'} {s.timeframe} "
        f"candles) from {s.start} to {s.end}: {s.days:g} days, {s.candles:,} candles "
        f"in {s.wall_seconds:.1f} s ({s.candles_per_second:,.0f} candles/s, "
        f"{s.speedup:,.0f}x real time)",
        f"coverage_checks: {s.coverage_checks} ({checks}); universe_refreshes: "
        f"{s.universe_refreshes}",
        f"model_reloads: {s.model_reloads} ({reloads}); models_published: {s.models_published}",
        f"actor_restarts: {s.actor_restarts}"
        + (f"; the bot STOPPED early: {s.stopped_early}" if s.stopped_early else ""),
        f"duplicate_trainings: {s.duplicate_trainings}",
        f"invariant_violations: {len(s.invariant_violations) or 'none'}",
        *(f"  - {v}" for v in s.invariant_violations[:20]),
        f"orders: {s.orders} (fills {s.fills}, refused {s.orders_failed}); round_trips: "
        f"{s.round_trips}; fees: {s.fees_quote:.8g} {quote}; signals: {s.signals}",
        f"net_return: {s.net_return_pct:+.2f}% (equity {s.final_equity:.8g} from "
        f"{s.starting_balance:g}); buy_hold_return: {s.buy_hold_return_pct:+.2f}% "
        f"(equal weights); max_drawdown: {100 * s.max_drawdown:.2f}%",
        f"training: window {s.training.window_days:g} days, max_iter {s.training.max_iter}, "
        f"{s.training.pool} pool x{s.training.workers}",
        "",
        f"{'symbol':<10} {'final state':<16} {'trainings':>9} {'active from':<17} "
        f"{'orders':>6} {'trips':>5} {'net %':>7} {'hold %':>7} {'candles':>7} {'gaps':>4}",
    ]
    for name, sym in s.symbols.items():
        active = (sym.became_active_at or "-").removesuffix(" UTC")[:16]
        r = sym if isinstance(sym, SymbolResult) else None
        lines.append(
            f"{name:<10} {sym.final_state:<16} {sym.trainings_started:>9} {active:<17} "
            f"{sym.orders:>6} {r.round_trips if r else 0:>5} "
            f"{r.net_return_pct if r else 0.0:>+7.2f} {r.buy_hold_return_pct if r else 0.0:>+7.2f} "
            f"{r.candles if r else 0:>7} {r.missing_candles if r else 0:>4}"
        )
    if out is not None:
        lines += ["", f"Report: {out / 'report.html'}  (summary.json, backtest.log)"]
    return "\n".join(lines)


def returns_html(summary: BacktestSummary) -> str:
    """The report's returns table: each symbol against holding it, and the totals."""
    e = html.escape
    rows = []
    for name, sym in summary.symbols.items():
        if not isinstance(sym, SymbolResult):
            continue
        rows.append(
            f"<tr><td>{e(name)}</td><td>{e(sym.final_state)}</td><td>{sym.orders}</td>"
            f"<td>{sym.round_trips}</td><td>{sym.fees_quote:.8g}</td>"
            f"<td>{sym.net_return_pct:+.3f}%</td><td>{sym.buy_hold_return_pct:+.3f}%</td>"
            f"<td>{e(sym.first_trade_at or '-')}</td><td>{sym.candles}</td>"
            f"<td>{sym.missing_candles}</td></tr>"
        )
    s = summary
    rows.append(
        f"<tr><th>total</th><td></td><td>{s.orders}</td><td>{s.round_trips}</td>"
        f"<td>{s.fees_quote:.8g}</td><td>{s.net_return_pct:+.3f}%</td>"
        f"<td>{s.buy_hold_return_pct:+.3f}%</td><td></td><td>{s.candles}</td><td></td></tr>"
    )
    return (
        f"<h2>Returns</h2><p>{s.exchange} {e(s.timeframe)} candles from {e(s.source)}, "
        f"{e(s.start)} to {e(s.end)}. Net return: the symbol's profit (fees paid, what is "
        "still held valued at the window's last close) as a share of the starting balance; "
        "buy and hold: its last close over its first open in the window (total: the "
        "symbols' mean). Missing candles are gaps in the data: skipped, never "
        "interpolated.</p>\n<table>\n<tr><th>symbol</th><th>final state</th><th>orders</th>"
        "<th>round trips</th><th>fees</th><th>net return</th><th>buy and hold</th>"
        "<th>first trade</th><th>candles</th><th>missing</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>"
    )


# --- the command line: python supervisor.py backtest ... --------------------------------


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


def parse_utc(text: str) -> int:
    """`2018-01-15`, `2018-01-15T12:00` or `2018-01-15 12:00` (UTC) in epoch milliseconds."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BacktestError(f"{text!r} is not a date: use 2018-01-15 or 2018-01-15T12:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def load_market(
    settings: Settings, candles: Path | None, symbols: list[str] | None
) -> tuple[ReplayMarket, str, str]:
    """(market, where the candles came from, whose they are); CandleFileError if unusable."""
    if candles is not None:
        exchange, series = read_candle_folder(candles, settings.timeframe, symbols)
        source = str(candles)
    else:
        exchange = public_data_name(settings)
        cache = CandleCache(Path(settings.data_dir) / "candles")
        series = read_cache(cache, exchange, settings.timeframe, symbols)
        source = str(cache.root / exchange)
    return ReplayMarket(series, settings.timeframe), source, exchange


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
    except (SettingsError, CandleFileError, ValueError) as exc:  # BacktestError, a timeframe
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clock = VirtualClock(start=start_s(settings, window))
    bar = ProgressBar(window.seconds)
    # the settings' level and up to the log file; warnings to the terminal, under the bar
    configure_logging(
        settings.logging.level,
        clock=clock,
        file=out / "backtest.log",
        terminal=ProgressAwareHandler(bar),
        terminal_level=logging.WARNING,
    )
    _log_data(market, window)
    thread_cap = threadpool_limits(limits=1)  # as a live run: fits never oversubscribe
    try:
        result = backtest(
            settings,
            market,
            window=window,
            source=source,
            exchange_name=exchange,
            pool_kind=args.pool,
            workers=args.workers,
            clock=clock,
            on_step=bar.update,
        )
    except KeyboardInterrupt:
        bar.finish()
        print("backtest: interrupted; no report written", file=sys.stderr)
        return 130
    finally:
        bar.finish()
        thread_cap.restore_original_limits()
    summary = result.summary
    title = (
        f"Backtest: {summary.market_symbols} symbols, {summary.timeframe}, "
        f"{summary.start} to {summary.end}"
    )
    sim_report.write(out, summary, title=title, extra_html=returns_html(summary))
    print(format_backtest(summary, out))
    return 1 if summary.invariant_violations or summary.stopped_early else 0
