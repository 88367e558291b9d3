"""One retry policy for calls to an exchange, on an injected clock.

A call is retried on the failures its caller names (for ccxt: `OperationFailed`),
with exponential backoff, at most `max_retries` times. The server can ask for a
pause (HTTP 429 Retry-After, a 418 IP ban): until it ends no request is sent at all
(a request during a Binance ban lengthens it), and no retry comes sooner.

Two limits bound the waiting: `max_wait_s`, the longest single wait, and
`deadline_s`, the longest a whole call may take, waits included (None: no total
limit). A wait that would break either is not made: the call fails at once, saying
how long the pause has left. Calls nested in another one (an order lookup inside an
order placement) share its deadline.

Everything waits through the `sleep` and `monotonic` given to `Retrier`, so tests
drive it with a fake clock and never sleep.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeVar

import msgspec

from exchange.types import TransientExchangeError

log = logging.getLogger("tradeactors.exchange")

T = TypeVar("T")

BAN_DEFAULT_S = 120.0  # a 418 without Retry-After: Binance bans start at 2 minutes
_HTTP_STATUS = re.compile(r"\b(418|429)\b")


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
    error_text: str, headers: Mapping[str, str], exchange_id: str
) -> tuple[float, str] | None:
    """How long the server asked us to stay quiet, and why, from a rate-limit error's text
    (which carries the HTTP status) and the reply's headers; None if it did not say."""
    match = _HTTP_STATUS.search(error_text)
    status = match.group(1) if match else None
    retry_after: float | None = None
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                retry_after = float(value)
            except ValueError:
                retry_after = None
    if status == "418":
        seconds = retry_after if retry_after is not None else BAN_DEFAULT_S
        return seconds, f"IP banned by {exchange_id} (HTTP 418) for {seconds:.0f} s"
    if retry_after is not None:
        return retry_after, f"rate limited (HTTP {status or 429}), Retry-After {retry_after:.0f} s"
    return None


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
        if policy.deadline_s is None:
            return True
        return self._retrier.monotonic() - self.started + seconds <= policy.deadline_s


class Retrier:
    """Runs calls under a `RetryPolicy`. One per client: the server's pause applies to
    every call made through it, from any thread."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
    ) -> None:
        self.policy = policy
        self.sleep = sleep
        self.monotonic = monotonic
        self._quiet_until = -math.inf
        self._quiet_reason = ""

    # --- the server's pause ----------------------------------------------------------------

    def pause(self, seconds: float, reason: str) -> None:
        """The server asked for `seconds` without requests (a later end wins)."""
        until = self.monotonic() + seconds
        if until > self._quiet_until:
            self._quiet_until, self._quiet_reason = until, reason

    def pause_left(self) -> float:
        return self._quiet_until - self.monotonic()

    def before_request(self, call: Call, name: str) -> None:
        """Wait out the server's pause, or refuse to send when the wait is too long."""
        left = self.pause_left()
        if left <= 0:
            return
        if not call.may_wait(left):
            raise TransientExchangeError(
                f"{name} not sent: {self._quiet_reason}; {left:.0f} s left, no request until then"
            )
        log.warning("%s waits %.1f s (%s)", name, left, self._quiet_reason)
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
            return self._quiet_reason
        if wait > self.policy.max_wait_s:
            return f"a wait of {wait:.0f} s is over the {self.policy.max_wait_s:.0f} s limit"
        return (
            f"a wait of {wait:.0f} s would pass the call's deadline of {self.policy.deadline_s} s"
        )
