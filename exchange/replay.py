"""Stored candles as a market: the price source of the paper exchange in a backtest.

`ReplayMarket` answers what `exchange.paper.PaperExchange` asks of a market (the
same questions `SyntheticMarket` answers), from real candles held in memory:

- a symbol is listed from its first candle on, so a young symbol is blocked by
  `coverage.min_history_days` and admitted later, exactly as on a live exchange;
- `last_closed`, `tickers` and `quote_volume_24h` read only candles closed at the
  `now` they are given; the paper exchange pages `ohlcv` only up to the clock's
  now, so nothing the bot sees lies in its future;
- gaps in the data stay gaps: a missing candle is absent from every answer (an
  aggregated candle holds the rows that exist), never interpolated; the price of
  a fill in a gap is the close of the last candle that existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.timeframes import DAY_MS, timeframe_ms
from exchange.ohlcv import resample, tickers_of
from exchange.types import ExchangeError, Ticker

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Gap:
    """Candles missing in a series: `missing` of them, the first opening at `start_ms`."""

    start_ms: int
    missing: int


def find_gaps(times: npt.ArrayLike, base_ms: int) -> list[Gap]:
    """The runs of missing candles between consecutive open `times` (increasing, aligned)."""
    t = np.asarray(times, dtype=np.int64)
    steps = np.diff(t) // base_ms
    return [Gap(int(t[i]) + base_ms, int(steps[i]) - 1) for i in np.flatnonzero(steps > 1)]


def check_candles(symbol: str, rows: FloatArray, base_ms: int) -> FloatArray:
    """`rows` as a read-only (N, 6) float64 array, or ValueError naming the first problem."""
    arr = np.array(rows, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 6:
        raise ValueError(f"{symbol}: candles must be an (N, 6) array, got shape {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{symbol}: no candles")
    if not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{symbol}: row {row} has a value that is not a finite number")
    times = arr[:, 0]
    problems = [
        (np.diff(times) <= 0, "time not after the previous row's"),
        (times % base_ms != 0, f"time not a multiple of the timeframe ({base_ms // 1000} s)"),
        ((arr[:, 1:5] <= 0).any(axis=1), "a price <= 0"),
        (arr[:, 5] < 0, "a negative volume"),
        (arr[:, 2] < arr[:, [1, 3, 4]].max(axis=1), "high below open, low or close"),
        (arr[:, 3] > arr[:, [1, 2, 4]].min(axis=1), "low above open, high or close"),
    ]
    for bad, what in problems:
        hits = np.flatnonzero(bad)
        if len(hits):
            row = int(hits[0]) + (1 if what.startswith("time not after") else 0)
            raise ValueError(f"{symbol}: row {row} (time_ms {int(times[row])}): {what}")
    arr.setflags(write=False)
    return arr


class ReplayMarket:
    """Real candles of one timeframe per symbol, served as a timeless market (see the module)."""

    def __init__(self, series: Mapping[str, FloatArray], timeframe: str) -> None:
        if not series:
            raise ValueError("a replay market needs at least one symbol")
        self.timeframe = timeframe
        self.base_ms = timeframe_ms(timeframe)
        self._rows: dict[str, FloatArray] = {}
        self._times: dict[str, IntArray] = {}
        self._quote_volume: dict[str, FloatArray] = {}  # cumulative close x volume, from 0
        for symbol in sorted(series):
            rows = check_candles(symbol, series[symbol], self.base_ms)
            self._rows[symbol] = rows
            self._times[symbol] = rows[:, 0].astype(np.int64)
            self._quote_volume[symbol] = np.concatenate(([0.0], np.cumsum(rows[:, 4] * rows[:, 5])))

    # --- metadata -------------------------------------------------------------------

    def symbols(self) -> list[str]:
        return list(self._rows)

    def _series(self, symbol: str) -> FloatArray:
        rows = self._rows.get(symbol)
        if rows is None:
            raise ExchangeError(f"unknown symbol {symbol!r} in the replayed candles")
        return rows

    def reference_price(self, symbol: str) -> float:
        """The first close: the price scale the paper exchange sizes amount steps by."""
        return float(self._series(symbol)[0, 4])

    def listed_ms(self, symbol: str) -> int:
        """Open time of the symbol's first candle: it is listed from then on."""
        return int(self._series(symbol)[0, 0])

    def end_ms(self, symbol: str) -> int:
        """Close time of the symbol's last candle."""
        return int(self._series(symbol)[-1, 0]) + self.base_ms

    def is_open(self, symbol: str, now_ms: int) -> bool:
        return now_ms >= self.listed_ms(symbol)

    def rows(self, symbol: str) -> FloatArray:
        """Every candle of `symbol` (read-only): for reports, never for the bot."""
        return self._series(symbol)

    def gaps(self, symbol: str) -> list[Gap]:
        self._series(symbol)
        return find_gaps(self._times[symbol], self.base_ms)

    # --- candles --------------------------------------------------------------------

    def _index(self, symbol: str, time_ms: int) -> int:
        """Index of the first candle opening at or after `time_ms`."""
        self._series(symbol)
        return int(np.searchsorted(self._times[symbol], time_ms, side="left"))

    def candles(self, symbol: str, start_ms: int, end_ms: int) -> FloatArray:
        """Stored candles with open time in [start_ms, end_ms), shape (N, 6); gaps stay gaps."""
        lo, hi = self._index(symbol, start_ms), self._index(symbol, end_ms)
        return self._rows[symbol][lo : max(lo, hi)].copy()

    def ohlcv(self, symbol: str, timeframe: str | int, start_ms: int, end_ms: int) -> FloatArray:
        """Candles of `timeframe` (a multiple of the data's) with open time in [start_ms, end_ms),
        aggregated from the stored ones on buckets aligned to multiples of the timeframe."""
        return resample(
            lambda start, end: self.candles(symbol, start, end),
            self.base_ms,
            timeframe,
            start_ms,
            end_ms,
        )

    def last_closed(self, symbol: str, now_ms: int) -> FloatArray | None:
        """The latest candle closed at `now_ms` (row of 6), or None before the first.

        In a gap this is the last candle that existed: its close is the last price traded.
        """
        i = self._index(symbol, int(now_ms) - self.base_ms + 1) - 1
        return self._rows[symbol][i] if i >= 0 else None

    # --- tickers --------------------------------------------------------------------

    def quote_volume_24h(self, symbol: str, now_ms: int) -> float:
        """Quote volume (close x volume) of the candles closed in the 24 h before `now_ms`."""
        lo = self._index(symbol, int(now_ms) - DAY_MS)
        hi = self._index(symbol, int(now_ms) - self.base_ms + 1)
        cumulative = self._quote_volume[symbol]
        return float(cumulative[max(lo, hi)] - cumulative[lo])

    def tickers(self, now_ms: int) -> dict[str, Ticker]:
        """Tickers of the symbols with a closed candle at `now_ms`; `last` is its close."""
        return tickers_of(self, self._rows, now_ms)
