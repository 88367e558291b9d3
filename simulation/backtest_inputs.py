"""What a backtest replays: the candles, the window, and settings fit for them.

`load_market` reads the candles (a folder of CSV files or the candle cache),
`replay_window` picks the stretch of virtual time to replay, `backtest_settings`
checks the settings against the candles and points them at a fresh data folder;
`BacktestError` is what refuses inputs a backtest cannot run on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from app.builders import public_data_name
from config.settings import Settings
from core.timefmt import format_utc
from core.timeframes import timeframe_ms
from exchange.replay import ReplayMarket
from storage.candle_files import read_cache, read_candle_folder
from storage.candles import CandleCache


class BacktestError(ValueError):
    """Inputs a backtest cannot run on; the message is one line for the user."""


@dataclass(frozen=True)
class Window:
    """What is replayed: virtual time runs from `start_ms` to `end_ms`."""

    start_ms: int
    end_ms: int

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


def utc_ms(time_ms: int | float) -> str:
    return format_utc(time_ms / 1000, seconds=True)


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


def start_s(settings: Settings, window: Window) -> float:
    """When the bot starts: the window's start plus the trader's candle delay."""
    return window.start_ms / 1000 + settings.trading.candle_delay_s


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
