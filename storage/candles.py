"""Append-only local cache of candles, and a resumable downloader that fills it.

One file per (exchange, symbol, timeframe) at
`root/<exchange>/<SYMBOL with / replaced by _>/<timeframe>.bin`, holding raw
little-endian float64 rows of 6 columns [time_ms, open, high, low, close, volume]
with strictly increasing times. Files are only ever appended to (and fsynced): a
row is written only if it is newer than the last stored one. A trailing partial
row left by a crash is ignored on read and cut off before the next append.
One process should write a given file at a time (threads of it may share a cache).
"""

from __future__ import annotations

import math
import os
import struct
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from core.durable import fsync_dir
from core.timeframes import timeframe_ms
from exchange.types import Candle

FloatArray = npt.NDArray[np.float64]

COLUMNS = 6
ROW_BYTES = COLUMNS * 8
_DTYPE = np.dtype("<f8")


class OhlcvSource(Protocol):
    """The part of `exchange.port.ExchangePort` that `download` uses (any port is one)."""

    @property
    def name(self) -> str: ...

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int = 1000
    ) -> list[Candle]: ...


def _empty() -> FloatArray:
    return np.empty((0, COLUMNS), dtype=np.float64)


def _check_part(kind: str, value: str) -> str:
    if not value or value in (".", "..") or any(c in value for c in ("/", "\\", "\0")):
        raise ValueError(f"invalid {kind} {value!r} for a candle cache path")
    return value


class CandleCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    def path(self, exchange: str, symbol: str, timeframe: str) -> Path:
        return (
            self.root
            / _check_part("exchange", exchange)
            / _check_part("symbol", symbol.replace("/", "_"))
            / f"{_check_part('timeframe', timeframe)}.bin"
        )

    def read(
        self, exchange: str, symbol: str, timeframe: str, since_ms: int | None = None
    ) -> FloatArray:
        """Stored candles with time >= since_ms (all if None), shape (N, 6), oldest first."""
        path = self.path(exchange, symbol, timeframe)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return _empty()
        rows = size // ROW_BYTES
        if rows == 0:
            return _empty()
        stored = np.memmap(path, dtype=_DTYPE, mode="r", shape=(rows, COLUMNS))
        try:
            first = 0
            if since_ms is not None:
                first = int(np.searchsorted(stored[:, 0], since_ms, side="left"))
            return np.array(stored[first:], dtype=np.float64)
        finally:
            del stored

    def last_time_ms(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        """Open time of the last complete stored row, or None if there is none."""
        path = self.path(exchange, symbol, timeframe)
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                full = size - size % ROW_BYTES
                if full == 0:
                    return None
                f.seek(full - ROW_BYTES)
                (time_ms,) = struct.unpack("<d", f.read(8))
        except FileNotFoundError:
            return None
        return int(time_ms)

    def append(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        rows: FloatArray | Sequence[Sequence[float]],
    ) -> int:
        """Append the rows newer than the last stored one; returns how many were written.

        Older rows and duplicate times are ignored (the first of equal times is
        kept); nothing stored is ever rewritten.
        """
        arr = np.asarray(rows, dtype=np.float64)
        if arr.size == 0:
            return 0
        if arr.ndim != 2 or arr.shape[1] != COLUMNS:
            raise ValueError(f"candle rows must have shape (N, {COLUMNS}), got {arr.shape}")
        if not np.isfinite(arr[:, 0]).all():
            raise ValueError(f"{symbol} {timeframe}: candle times must be finite")
        arr = arr[np.argsort(arr[:, 0], kind="stable")]
        times = arr[:, 0]
        keep = np.ones(len(arr), dtype=bool)
        keep[1:] = times[1:] > times[:-1]
        path = self.path(exchange, symbol, timeframe)
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            with open(fd, "r+b") as f:
                size = f.seek(0, os.SEEK_END)
                full = size - size % ROW_BYTES
                if full != size:  # a crash left a partial row: cut it off
                    f.truncate(full)
                if full:
                    f.seek(full - ROW_BYTES)
                    (last,) = struct.unpack("<d", f.read(8))
                    keep &= times > last
                new = arr[keep]
                if len(new):
                    f.seek(full)
                    f.write(new.astype(_DTYPE, copy=False).tobytes())
                if len(new) or full != size:
                    f.flush()
                    os.fsync(f.fileno())
            if created:
                fsync_dir(path.parent)
        return len(new)


def download(
    cache: CandleCache,
    exchange: OhlcvSource,
    symbol: str,
    timeframe: str,
    since_ms: int,
    until_ms: int,
    progress: Callable[[int, int], None] | None = None,
    page_limit: int = 1000,
) -> FloatArray:
    """Fill the cache with `symbol`'s candles up to `until_ms` and return those in [since, until).

    Resumes after the cache's last row (since = last + tf) when there is one —
    also when that row is older than `since_ms`, so the cache never has a gap —
    and otherwise starts at `since_ms`. Pages forward with
    `since = last time + tf`, `page_limit` candles per request, appending each
    page as it arrives (an interrupted download resumes where it stopped), until a
    page is empty or `until_ms` is reached. After each page calls
    `progress(done, expected)`: candles stored so far by this call, and that plus
    the candles still expected up to `until_ms` (a final call has done ==
    expected). The cache only appends, so when it already starts after
    `since_ms` the result starts there too. Exchange errors propagate.
    """
    if page_limit < 1:
        raise ValueError(f"page_limit {page_limit} must be >= 1")
    tf = timeframe_ms(timeframe)
    name = exchange.name
    last = cache.last_time_ms(name, symbol, timeframe)
    cursor = int(since_ms) if last is None else last + tf
    done = 0
    reported: tuple[int, int] | None = None
    while cursor < until_ms:
        page = exchange.fetch_ohlcv(symbol, timeframe, since_ms=cursor, limit=page_limit)
        rows = np.asarray(page, dtype=np.float64).reshape(-1, COLUMNS)
        rows = rows[(rows[:, 0] >= cursor) & (rows[:, 0] < until_ms)]
        if len(rows) == 0:
            break
        done += cache.append(name, symbol, timeframe, rows)
        cursor = int(rows[:, 0].max()) + tf
        if progress is not None:
            reported = (done, done + max(0, math.ceil((until_ms - cursor) / tf)))
            progress(*reported)
    if progress is not None and reported is not None and reported[0] != reported[1]:
        progress(done, done)
    stored = cache.read(name, symbol, timeframe, since_ms)
    return stored[stored[:, 0] < until_ms]
