"""The closed candles of many symbols at once: what the market-data role fetches at each close.

`CandleFeed.fetch(symbols, close_ms)` returns, for every symbol, the window of the
last `bars` closed candles ending with the candle that closed at `close_ms`, and
for every symbol it could not serve, why. It keeps each symbol's window between
calls, so a symbol seen at the previous close costs one small request (the new
candle) instead of the whole window, and a gap (a missed close, a restart of the
exchange) is repaired by fetching from the last candle it has.

Requests run concurrently, at most `max_in_flight` at a time, and the whole fetch
waits at most `deadline_s`: a symbol whose request has not answered by then is
reported missing ("no answer within ..."), so one slow symbol cannot hold up the
decisions on the others. Measured against the loopback fake Binance with 50 ms per
request (benchmarks/decision_latency.py): 500 symbols one after another take
~25 s; 64 in flight ~0.8 s (a thread per request, each with its own HTTP
connection; ccxt's async client measured the same, and would need a second copy
of the retry and error handling).

With `max_in_flight` 1 everything runs in the caller's thread, in symbol order:
the paper exchange computes candles in-process, where threads buy nothing.

Windows are read-only numpy arrays (rows of [open ms, open, high, low, close,
volume], oldest first): they cross a mailbox without being copied or changed.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from core.timefmt import format_utc
from core.timeframes import timeframe_ms
from exchange.port import ExchangePort
from exchange.types import ExchangeError

Window = np.ndarray  # (rows, 6) float64, read-only


class FeedResult(NamedTuple):
    candles: dict[str, Window]  # symbol -> the last `bars` closed candles, ending at close_ms
    missing: dict[str, str]  # symbol -> why it has no candle for close_ms
    requests: int  # requests sent for this fetch


class Request(NamedTuple):
    since_ms: int
    limit: int


def plan(last_open_ms: int | None, target_open_ms: int, tf_ms: int, bars: int) -> Request | None:
    """What to ask the exchange for so that a window whose newest candle opened at
    `last_open_ms` (None: no window) ends with the candle opening at `target_open_ms`.

    None when the window already has it; the new candles only when fewer than `bars`
    are missing; else the whole window.
    """
    if last_open_ms is not None and last_open_ms >= target_open_ms:
        return None
    if last_open_ms is not None:
        missing = (target_open_ms - last_open_ms) // tf_ms
        if 0 < missing < bars:
            return Request(last_open_ms + tf_ms, int(missing))
    return Request(target_open_ms - (bars - 1) * tf_ms, bars)


def merge(window: Window | None, rows: Window, bars: int) -> Window:
    """`window` extended by the newer of `rows`, cut to its last `bars` rows, read-only."""
    if window is not None and len(window):
        rows = rows[rows[:, 0] > window[-1, 0]]
        rows = np.concatenate([window, rows]) if len(rows) else window
    out = np.array(rows[-bars:], dtype=np.float64)  # a copy: the caller's rows stay theirs
    out.setflags(write=False)
    return out


def ending_at(window: Window, target_open_ms: int) -> Window:
    """The rows of `window` up to the candle opening at `target_open_ms` (a read-only view)."""
    end = int(np.searchsorted(window[:, 0], target_open_ms, side="right"))
    return window[:end]


class CandleFeed:
    """Fetches closed candles of many symbols concurrently through one `ExchangePort`.

    Used from one thread at a time (the market-data actor's); its worker threads
    only run the exchange requests.
    """

    def __init__(
        self,
        exchange: ExchangePort,
        timeframe: str,
        bars: int,
        *,
        max_in_flight: int = 1,
        deadline_s: float | None = None,
    ) -> None:
        if bars < 1:
            raise ValueError(f"a candle window needs at least 1 bar, got {bars}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.exchange = exchange
        self.timeframe = timeframe
        self.tf_ms = timeframe_ms(timeframe)
        self.bars = bars
        self.max_in_flight = max_in_flight
        self.deadline_s = deadline_s
        self.windows: dict[str, Window] = {}
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def fetch(self, symbols: Iterable[str], close_ms: int) -> FeedResult:
        """Every symbol's window ending with the candle that closed at `close_ms`."""
        target = close_ms - self.tf_ms  # the open time of that candle
        wanted = sorted(set(symbols))
        requests: dict[str, Request] = {}
        for symbol in wanted:
            window = self.windows.get(symbol)
            last = int(window[-1, 0]) if window is not None and len(window) else None
            request = plan(last, target, self.tf_ms, self.bars)
            if request is not None:
                requests[symbol] = request
        rows, missing = self._run(requests)
        candles: dict[str, Window] = {}
        for symbol in wanted:
            if symbol in missing:
                continue
            got = rows.get(symbol)
            if got is not None and len(got):
                self.windows[symbol] = merge(self.windows.get(symbol), got, self.bars)
            window = self.windows.get(symbol)
            if window is None or not len(window):
                missing[symbol] = f"no candles on {self.exchange.name} yet"
                continue
            view = ending_at(window, target)
            if not len(view) or int(view[-1, 0]) != target:
                newest = f"newest {format_utc(window[-1, 0] / 1000)}" if len(window) else "none"
                missing[symbol] = (
                    f"the candle of {format_utc(target / 1000)} is not closed on "
                    f"{self.exchange.name} yet ({newest})"
                )
                continue
            candles[symbol] = view
        return FeedResult(candles=candles, missing=missing, requests=len(requests))

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the windows of symbols no longer asked for (their memory, and a stale window)."""
        keep = set(keep)
        for symbol in [s for s in self.windows if s not in keep]:
            del self.windows[symbol]

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # --- requests ------------------------------------------------------------------------

    def _one(self, symbol: str, request: Request) -> Window:
        got = self.exchange.fetch_ohlcv(
            symbol, self.timeframe, since_ms=request.since_ms, limit=request.limit
        )
        return np.asarray(got, dtype=np.float64).reshape(-1, 6)

    def _run(self, requests: dict[str, Request]) -> tuple[dict[str, Window], dict[str, str]]:
        rows: dict[str, Window] = {}
        missing: dict[str, str] = {}
        if self.max_in_flight == 1 or len(requests) <= 1:
            for symbol, request in requests.items():
                try:
                    rows[symbol] = self._one(symbol, request)
                except ExchangeError as exc:
                    missing[symbol] = str(exc)
            return rows, missing
        pool = self._executor()
        futures = {pool.submit(self._one, s, r): s for s, r in requests.items()}
        done, late = concurrent.futures.wait(futures, timeout=self.deadline_s)
        for future in late:
            future.cancel()  # not started yet: never sent; started: its answer is dropped
            missing[futures[future]] = f"no answer within {self.deadline_s:g} s"
        for future in done:
            symbol = futures[future]
            try:
                rows[symbol] = future.result()
            except ExchangeError as exc:
                missing[symbol] = str(exc)
        return rows, missing

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.max_in_flight, thread_name_prefix="market-data"
                )
            return self._pool
