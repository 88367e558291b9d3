"""Candle arithmetic and tickers shared by the markets the paper exchange trades on
(synthetic, replayed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from core.timeframes import timeframe_ms
from exchange.types import Ticker

FloatArray = npt.NDArray[np.float64]


def aggregate(rows: FloatArray, tf_ms: int) -> FloatArray:
    """Candles of `tf_ms` from finer `rows` (N, 6), buckets aligned to multiples of `tf_ms`.

    A bucket holds only the rows that exist: a gap in the data shortens it (its
    open is the first row's, its volume the sum of the rows it has); a bucket
    with no row is absent, never invented.
    """
    if len(rows) == 0:
        return rows
    buckets = rows[:, 0].astype(np.int64) // tf_ms
    starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    ends = np.concatenate((starts[1:], [len(rows)])) - 1
    out = np.empty((len(starts), 6), dtype=np.float64)
    out[:, 0] = buckets[starts] * tf_ms
    out[:, 1] = rows[starts, 1]
    out[:, 2] = np.maximum.reduceat(rows[:, 2], starts)
    out[:, 3] = np.minimum.reduceat(rows[:, 3], starts)
    out[:, 4] = rows[ends, 4]
    out[:, 5] = np.add.reduceat(rows[:, 5], starts)
    return out


def resample(
    candles: Callable[[int, int], FloatArray],
    base_ms: int,
    timeframe: str | int,
    start_ms: int,
    end_ms: int,
) -> FloatArray:
    """Candles of `timeframe` ('5m', '1h' or ms) with open time in [start_ms, end_ms), from
    `candles(start, end)` of the market's base timeframe; buckets aligned to multiples of
    the timeframe since the epoch. ValueError if it is not a multiple of the base."""
    tf = timeframe_ms(timeframe) if isinstance(timeframe, str) else int(timeframe)
    if tf == base_ms:
        return candles(start_ms, end_ms)
    if tf <= 0 or tf % base_ms != 0:
        raise ValueError(f"timeframe of {tf} ms is not a multiple of the base {base_ms} ms")
    first = -(-int(start_ms) // tf) * tf
    last = -(-int(end_ms) // tf) * tf
    return aggregate(candles(first, last), tf)


class _Quoted(Protocol):
    def is_open(self, symbol: str, now_ms: int) -> bool: ...

    def last_closed(self, symbol: str, now_ms: int) -> FloatArray | None: ...

    def quote_volume_24h(self, symbol: str, now_ms: int) -> float: ...


def tickers_of(market: _Quoted, symbols: Iterable[str], now_ms: int) -> dict[str, Ticker]:
    """Tickers of the `symbols` open at `now_ms` with a closed candle; `last` is its close."""
    out: dict[str, Ticker] = {}
    for symbol in symbols:
        if not market.is_open(symbol, now_ms):
            continue
        row = market.last_closed(symbol, now_ms)
        if row is None:
            continue
        out[symbol] = Ticker(
            symbol=symbol,
            last=float(row[4]),
            quote_volume=market.quote_volume_24h(symbol, now_ms),
        )
    return out
