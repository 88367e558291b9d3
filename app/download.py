"""`python supervisor.py download`: real history into the candle cache, through public endpoints.

No keys: markets, tickers and candles come from the exchange's public REST API
through ccxt (`app.builders.build_public_exchange`: `exchange.id`, the production
exchange unless `exchange.kind: ccxt` names a sandbox or demo venue, `base_url`
if set). Candles go to `<data_dir>/candles/<exchange>/<SYMBOL>/<tf>.bin`
(`storage.candles`), the cache the bot's trainers read and `backtest` replays.

- resumable: the cache only appends, so a second run fetches only what came
  after its last candle (and an interrupted run resumes where it stopped);
- a progress bar per symbol on a terminal (tqdm);
- gaps in the exchange's data (candles it does not have) are reported per symbol;
- an exchange that cannot be reached is one line on stderr and exit code 1.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from app.builders import build_public_exchange
from config.settings import Settings, SettingsError, load_settings
from core.timeframes import DAY_MS, timeframe_ms
from exchange.port import ExchangePort
from exchange.replay import Gap, find_gaps
from exchange.types import ExchangeError, TransientExchangeError
from policy.universe import select_universe
from storage.candles import CandleCache, download

# An interactive command: fail fast (it resumes) rather than retry for long.
MAX_RETRIES = 1


@dataclass
class Downloaded:
    """One symbol's history in the cache after a download, within the range asked for."""

    symbol: str
    new: int  # candles appended by this run
    stored: int  # candles in the cache within the range
    first_ms: int | None
    last_ms: int | None
    gaps: list[Gap] = field(default_factory=list)
    # the cache already started at first_ms: older history cannot be added (it only appends)
    cache_file: Path | None = None

    @property
    def missing(self) -> int:
        return sum(g.missing for g in self.gaps)


def utc_minute(time_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time_ms / 1000))


def describe(d: Downloaded, timeframe: str, since_ms: int) -> str:
    """One line per symbol: what is stored, and the gaps in the exchange's data."""
    if d.first_ms is None or d.last_ms is None:
        return f"{d.symbol}: no {timeframe} candles on the exchange in the range asked for"
    text = (
        f"{d.symbol}: {d.stored:,} {timeframe} candles ({d.new:,} new), "
        f"{utc_minute(d.first_ms)} to {utc_minute(d.last_ms)}"
    )
    if d.first_ms > since_ms + timeframe_ms(timeframe):
        text += (
            " (the history starts there)"
            if d.cache_file is None
            else f" (the cache starts there: it only appends; delete {d.cache_file} to "
            "download older history)"
        )
    if d.gaps:
        longest = max(d.gaps, key=lambda g: g.missing)
        text += (
            f"; {len(d.gaps)} gaps in the exchange's data, {d.missing:,} candles missing "
            f"(longest {longest.missing:,} from {utc_minute(longest.start_ms)})"
        )
    else:
        text += "; no gaps"
    return text


def choose_symbols(
    exchange: ExchangePort, settings: Settings, symbols: Sequence[str] | None, top: int | None
) -> list[str]:
    """`symbols` if given (each must be a spot market), else the `top` (default: the
    universe's top_n, or its static list) markets of the quote currency by 24 h volume."""
    markets = exchange.load_markets()
    if symbols:
        unknown = [s for s in symbols if s not in markets]
        if unknown:
            raise SettingsError(
                f"not a spot market on {exchange.name}: {', '.join(unknown)} (symbols are "
                "written BASE/QUOTE, e.g. ETH/BTC)"
            )
        return list(symbols)
    universe = settings.universe
    if top is None and universe.mode == "static" and universe.symbols:
        return choose_symbols(exchange, settings, universe.symbols, None)
    return select_universe(
        markets,
        exchange.fetch_tickers(),
        quote=settings.exchange.quote,
        top_n=top or universe.top_n,
        blacklist=universe.blacklist,
    )


class _Bar:
    """A symbol's progress bar: tqdm on a terminal, nothing otherwise."""

    def __init__(self, symbol: str, expected: int, stream: TextIO) -> None:
        self.bar = tqdm(
            total=expected,
            desc=f"{symbol:<12}",
            unit=" candles",
            file=stream,
            disable=None,
            leave=True,
            dynamic_ncols=True,
        )

    def __call__(self, done: int, expected: int) -> None:
        self.bar.total = expected
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def download_all(
    exchange: ExchangePort,
    cache: CandleCache,
    symbols: Sequence[str],
    timeframe: str,
    since_ms: int,
    until_ms: int,
    stream: TextIO,
    bars: TextIO,
) -> list[Downloaded]:
    """Fill the cache with each symbol's candles in [since_ms, until_ms), resuming: a
    progress bar per symbol on `bars`, a line of what is stored on `stream`."""
    tf = timeframe_ms(timeframe)
    done = []
    for symbol in symbols:
        last = cache.last_time_ms(exchange.name, symbol, timeframe)
        cursor = since_ms if last is None else last + tf
        bar = _Bar(symbol, max(0, math.ceil((until_ms - cursor) / tf)), bars)
        try:
            before = cache.read(exchange.name, symbol, timeframe)
            rows = download(cache, exchange, symbol, timeframe, since_ms, until_ms, progress=bar)
        finally:
            bar.close()
        times = rows[:, 0]
        late_cache = len(before) > 0 and before[0, 0] > since_ms
        done.append(
            Downloaded(
                symbol=symbol,
                new=len(cache.read(exchange.name, symbol, timeframe)) - len(before),
                stored=len(rows),
                first_ms=int(times[0]) if len(rows) else None,
                last_ms=int(times[-1]) if len(rows) else None,
                gaps=find_gaps(times, tf),
                cache_file=cache.path(exchange.name, symbol, timeframe) if late_cache else None,
            )
        )
        print(describe(done[-1], timeframe, since_ms), file=stream, flush=True)
    return done


def run_download(
    settings: Settings,
    *,
    symbols: Sequence[str] | None = None,
    top: int | None = None,
    days: float | None = None,
    timeframe: str | None = None,
    now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    stream: TextIO | None = None,
) -> int:
    """The download command after its arguments were read; the exit code.

    What was stored goes to `stream` (default stdout); progress bars and errors to
    `stream` (default stderr).
    """
    out = stream if stream is not None else sys.stdout
    err = stream if stream is not None else sys.stderr
    timeframe = timeframe or settings.timeframe
    days = settings.training.window_days if days is None else days
    try:
        tf = timeframe_ms(timeframe)
        if not days > 0:
            raise SettingsError(f"--days must be > 0, got {days:g}")
        exchange = build_public_exchange(settings, now_ms, max_retries=MAX_RETRIES)
    except (SettingsError, ValueError) as exc:
        print(f"download: {exc}", file=err)
        return 2
    where = settings.exchange.base_url or settings.exchange.id
    try:
        chosen = choose_symbols(exchange, settings, symbols, top)
        until = now_ms() // tf * tf  # the candle still forming is not history yet
        since = until - int(days * DAY_MS)
        cache = CandleCache(Path(settings.data_dir) / "candles")
        print(
            f"Downloading {days:g} days of {timeframe} candles of {len(chosen)} symbols from "
            f"{exchange.name} into {cache.root / exchange.name}",
            file=out,
            flush=True,
        )
        results = download_all(exchange, cache, chosen, timeframe, since, until, out, err)
    except SettingsError as exc:
        print(f"download: {exc}", file=err)
        return 2
    except TransientExchangeError as exc:
        print(f"download: cannot reach {where}: {exc}", file=err)
        return 1
    except (ExchangeError, OSError) as exc:
        print(f"download: {where}: {exc}", file=err)
        return 1
    finally:
        exchange.close()
    gaps = sum(len(r.gaps) for r in results)
    print(
        f"Done: {sum(r.new for r in results):,} new candles, {sum(r.stored for r in results):,} "
        f"stored in range, {gaps} gaps reported. Replay them with: python supervisor.py "
        f"backtest --settings <the same file> --timeframe {timeframe}",
        file=out,
    )
    return 0


def add_parser(commands: Any) -> None:
    """The `download` subcommand, on the supervisor's subparsers."""
    dl = commands.add_parser(
        "download",
        help="download real history into the candle cache (public endpoints, no keys)",
        description="Download candles through the exchange's public endpoints (ccxt, no keys) "
        "into the candle cache of data_dir; resumable. Exit codes: 0 ok, 1 exchange "
        "unreachable or failing, 2 bad arguments or settings (docs/backtesting.md).",
    )
    dl.add_argument(
        "--settings", default="settings.yaml", help="settings file (default: %(default)s)"
    )
    which = dl.add_mutually_exclusive_group()
    which.add_argument("--symbols", help="these symbols, e.g. BTC/USDT,ETH/USDT")
    which.add_argument(
        "--top", type=int, help="the N markets of exchange.quote with the most 24 h volume"
    )
    dl.add_argument("--days", type=float, help="days of history (default: training.window_days)")
    dl.add_argument("--timeframe", help="candle size (default: the settings' timeframe)")


def command(args: Any) -> int:
    try:
        settings = load_settings(args.settings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.top is not None and args.top < 1:
        print(f"download: --top must be >= 1, got {args.top}", file=sys.stderr)
        return 2
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()] if args.symbols else None
    # the exchange's retry warnings would add lines to the one that says what failed
    exchange_log = logging.getLogger("tradeactors.exchange")
    level = exchange_log.level
    exchange_log.setLevel(logging.ERROR)
    try:
        return run_download(
            settings, symbols=symbols, top=args.top, days=args.days, timeframe=args.timeframe
        )
    finally:
        exchange_log.setLevel(level)
