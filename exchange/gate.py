"""What every client of one exchange shares: the server's pause and the request weight budget.

The bot talks to an exchange through one client per role (market data, orders,
coverage and downloads: docs/exchanges.md), so that a history download or an
order lookup never waits behind another role's request. But the exchange counts
per IP, not per client:
- a ban (HTTP 418) or a Retry-After (429) stops every client: no request at all
  until it ends (a request during a Binance ban lengthens it);
- request weight is counted over the last minute across all of them, and kept
  under `limit` (by default half the exchange's own limit: 2x headroom for
  whatever else shares the IP, and for the exchange's count running ahead of ours).

Weight is counted in ccxt's units of request cost (`cost` in ccxt's API tables,
one unit per `rateLimit` ms: 1200 units a minute on Binance stand for Binance's
6000 weight a minute, so one unit is 5 weight there). Unlike ccxt's own
throttle, which spaces requests `cost x rateLimit` apart (10 s for 500 candle
requests on Binance), the budget lets a burst through as long as the minute's
total stays under the limit, which is what the exchange counts.

Thread-safe; time is the injected `monotonic`.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Callable

WINDOW_S = 60.0
# ccxt cost units -> the exchange's own weight, where they differ (for reports only)
WEIGHT_PER_UNIT = {"binance": 5.0}


class ServerGate:
    """The server's pause and the weight spent in the last minute, for every client of one
    exchange. `limit` None: no weight budget (only the pause)."""

    def __init__(self, monotonic: Callable[[], float], limit: float | None = None) -> None:
        self.monotonic = monotonic
        self.limit = limit
        self._lock = threading.Lock()
        self._quiet_until = -math.inf
        self._quiet_reason = ""
        self._spent: collections.deque[tuple[float, float]] = collections.deque()
        self._in_window = 0.0
        self.total = 0.0  # units spent since the start (benchmarks)

    # --- the server's pause -------------------------------------------------------------

    def pause(self, seconds: float, reason: str) -> None:
        """The server asked for `seconds` without requests (a later end wins)."""
        with self._lock:
            until = self.monotonic() + seconds
            if until > self._quiet_until:
                self._quiet_until, self._quiet_reason = until, reason

    def pause_left(self) -> float:
        with self._lock:
            return self._quiet_until - self.monotonic()

    @property
    def quiet_reason(self) -> str:
        with self._lock:
            return self._quiet_reason

    # --- the weight budget -----------------------------------------------------------------

    def reserve(self, units: float) -> float:
        """Spend `units` now if the last minute leaves room (0.0), else spend nothing and
        return the seconds until there will be room."""
        with self._lock:
            now = self.monotonic()
            self._expire(now)
            if self.limit is None or self._in_window + units <= self.limit or not self._spent:
                self._spent.append((now, units))
                self._in_window += units
                self.total += units
                return 0.0
            # the oldest spends leave the window first: wait until enough of them have
            need = self._in_window + units - self.limit
            freed = 0.0
            for at, spent in self._spent:
                freed += spent
                if freed >= need:
                    return max(at + WINDOW_S - now, 1e-3)
            return WINDOW_S  # pragma: no cover - freed reaches need by the last entry

    def used(self) -> float:
        """Units spent in the last minute."""
        with self._lock:
            self._expire(self.monotonic())
            return self._in_window

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now - WINDOW_S:
            _, units = self._spent.popleft()
            self._in_window -= units
        if not self._spent:
            self._in_window = 0.0  # no float dust left behind
