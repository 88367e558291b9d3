"""One retry policy for calls to an exchange, on an injected clock.

A call is retried on the failures its caller names (for ccxt: `OperationFailed`),
with exponential backoff, at most `max_retries` times. The server can ask for a
pause (HTTP 429 Retry-After, a 418 IP ban): until it ends no request is sent at all
(a request during a Binance ban lengthens it), and no retry comes sooner.

Two limits bound the waiting: `max_wait_s`, the longest single wait, and
`deadline_s`, the longest a whole call may take, waits included (None: no total
limit; the bot sets it from `exchange.deadline_s`). A wait that would break either
is not made: the call fails at once, saying how long the pause has left and when it
ends, and the caller tries again later (the trader at the next candle). Calls nested
in another one (an order lookup inside an order placement) share its deadline.

The pause lives in a `ServerGate` (exchange/gate.py) that every client of one
exchange shares: a ban stops them all.

Everything waits through the `sleep` and `monotonic` given to `Retrier`, so tests
drive it with a fake clock and never sleep.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeVar

import msgspec

from core.timefmt import format_utc
from exchange.gate import ServerGate
from exchange.types import TransientExchangeError

log = logging.getLogger("tradeactors.exchange")

T = TypeVar("T")

BAN_DEFAULT_S = 120.0  # a 418 that says neither how long nor until when: bans start at 2 minutes
_HTTP_STATUS = re.compile(r"\b(418|429)\b")
# Binance's -1003 text: "Way too much request weight used; IP banned until 1567656195773."
_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    max_retries: int = 4  # after the first attempt
    backoff_base_s: float = 0.5  # 0.5, 1, 2, 4 s ... between retries
    backoff_max_s: float = 8.0
    max_wait_s: float = 60.0  # longest single wait (backoff, Retry-After, ban) in one call
    deadline_s: float | None = None  # longest a whole call may take, waits included

    def backoff(self, retry: int) -> float:
        """The wait before retry `retry` (1, 2, ...): exponential, capped."""
        return min(self.backoff_max_s, self.backoff_base_s * 2 ** (retry - 1))


def server_pause(
    error_text: str,
    headers: Mapping[str, str],
    exchange_id: str,
    now_ms: int | None = None,
) -> tuple[float, str] | None:
    """How long the server asked us to stay quiet, and why, from a rate-limit error's text
    (which carries the HTTP status) and the reply's headers; None if it did not say.

    A ban lasts what its Retry-After header says, else until the time in Binance's
    "banned until <ms>" text (read against `now_ms`, the exchange's clock), else
    BAN_DEFAULT_S. With `now_ms` the reason names the time it ends.
    """
    match = _HTTP_STATUS.search(error_text)
    status = match.group(1) if match else None
    retry_after: float | None = None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                retry_after = float(value)
            except ValueError:
                retry_after = None
    until = _BANNED_UNTIL.search(error_text)
    if status == "418" or (until is not None and retry_after is None):
        seconds = retry_after
        if seconds is None and until is not None and now_ms is not None:
            seconds = max(0.0, (int(until.group(1)) - now_ms) / 1000)
        if seconds is None:
            seconds = BAN_DEFAULT_S
        return seconds, f"IP banned by {exchange_id} (HTTP 418) for {seconds:.0f} s" + _until(
            now_ms, seconds
        )
    if retry_after is not None:
        return retry_after, (
            f"rate limited (HTTP {status or 429}), Retry-After {retry_after:.0f} s"
            + _until(now_ms, retry_after)
        )
    return None


def _until(now_ms: int | None, seconds: float) -> str:
    if now_ms is None:
        return ""
    return f", until {format_utc(now_ms / 1000 + seconds, seconds=True)}"


class GaveUp(NamedTuple):
    """Why `Retrier.run` stopped retrying."""

    failures: int  # attempts that failed, the last one included
    wait_s: float  # the wait the next retry needed
    why: str  # the limit that wait broke, or "" when the retries ran out


class Call:
    """One call run by a `Retrier`: when it started (for the deadline) and its retries."""

    def __init__(self, retrier: Retrier, within: Call | None = None) -> None:
        self._retrier = retrier
        self.started: float = within.started if within is not None else retrier.monotonic()
        self.retries = 0

    def may_wait(self, seconds: float) -> bool:
        policy = self._retrier.policy
        if seconds > policy.max_wait_s:
            return False
        left = self.time_left()
        return left is None or seconds <= left

    def time_left(self) -> float | None:
        """Seconds until the call's deadline (None: it has none)."""
        deadline = self._retrier.policy.deadline_s
        if deadline is None:
            return None
        return self.started + deadline - self._retrier.monotonic()


class Retrier:
    """Runs calls under a `RetryPolicy`. One per client; the server's pause is the `gate`'s,
    shared by every client of the exchange (default: a gate of its own)."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        gate: ServerGate | None = None,
    ) -> None:
        self.policy = policy
        self.sleep = sleep
        self.monotonic = monotonic
        self.gate = gate or ServerGate(monotonic)

    # --- the server's pause ----------------------------------------------------------------

    def pause(self, seconds: float, reason: str) -> None:
        """The server asked for `seconds` without requests (a later end wins)."""
        self.gate.pause(seconds, reason)

    def pause_left(self) -> float:
        return self.gate.pause_left()

    def before_request(self, call: Call, name: str) -> None:
        """Wait out the server's pause, or refuse to send when the wait is too long."""
        left = self.pause_left()
        if left <= 0:
            return
        reason = self.gate.quiet_reason
        if not call.may_wait(left):
            raise TransientExchangeError(
                f"{name} not sent: {reason}; {left:.0f} s left, no request until then"
            )
        log.warning("%s waits %.1f s (%s)", name, left, reason)
        self.sleep(left)

    # --- retries ---------------------------------------------------------------------------

    def run(
        self,
        attempt: Callable[[Call], T],
        *,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
        on_retry: Callable[[BaseException, int, float], None],
        give_up: Callable[[BaseException, GaveUp], Exception],
        retries: int | None = None,
        wait_at_least: Callable[[], float] | None = None,
        within: Call | None = None,
    ) -> T:
        """`attempt(call)` until it returns. After a `retry_on` failure: wait (the backoff,
        the server's pause and `wait_at_least()`, whichever is longest), report it with
        `on_retry(exc, retry, wait)` and try again; past `retries` (default the policy's)
        or a wait the limits forbid, raise `give_up(exc, GaveUp(...))` instead. Other
        exceptions pass through."""
        call = Call(self, within)
        limit = self.policy.max_retries if retries is None else retries
        while True:
            try:
                return attempt(call)
            except retry_on as exc:
                call.retries += 1
                floor = wait_at_least() if wait_at_least is not None else 0.0
                wait = max(self.policy.backoff(call.retries), self.pause_left(), floor)
                if not call.may_wait(wait):
                    raise give_up(exc, GaveUp(call.retries, wait, self._why_not(wait))) from None
                if call.retries > limit:
                    raise give_up(exc, GaveUp(call.retries, wait, "")) from None
                on_retry(exc, call.retries, wait)
                self.sleep(wait)

    def _why_not(self, wait: float) -> str:
        if self.pause_left() >= wait:
            return self.gate.quiet_reason
        if wait > self.policy.max_wait_s:
            return f"a wait of {wait:.0f} s is over the {self.policy.max_wait_s:.0f} s limit"
        return (
            f"a wait of {wait:.0f} s would pass the call's deadline of {self.policy.deadline_s} s"
        )
