"""The retry policy (`exchange/retry.py`) on a fake clock: backoff, the server's pause,
the longest wait and a call's deadline. Nothing here sleeps."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from exchange.retry import Call, GaveUp, Retrier, RetryPolicy, server_pause
from exchange.types import TransientExchangeError
from tests.fake_time import FakeTime


class Flaky(Exception):
    pass


class Stopped(Exception):
    def __init__(self, stop: GaveUp) -> None:
        super().__init__(stop.why)
        self.stop = stop


def retrier(time: FakeTime, **policy: float | None) -> Retrier:
    return Retrier(RetryPolicy(**policy), sleep=time.sleep, monotonic=time.monotonic)  # type: ignore[arg-type]


def failing(times: int, result: str = "ok") -> Callable[[Call], str]:
    """An attempt that raises Flaky `times` times, then returns `result`."""
    left = [times]

    def attempt(call: Call) -> str:
        if left[0] > 0:
            left[0] -= 1
            raise Flaky(f"failure {times - left[0]}")
        return result

    return attempt


def run(r: Retrier, attempt: Callable[[Call], str], **kw: object) -> tuple[str, list[str]]:
    retries: list[str] = []
    result = r.run(
        attempt,
        retry_on=Flaky,
        on_retry=lambda exc, n, wait: retries.append(f"{exc} -> retry {n} in {wait:g} s"),
        give_up=lambda exc, stop: Stopped(stop),
        **kw,  # type: ignore[arg-type]
    )
    return result, retries


def test_backoff_doubles_up_to_its_cap_then_the_retries_run_out() -> None:
    time = FakeTime()
    r = retrier(time, max_retries=5, backoff_base_s=0.5, backoff_max_s=3.0)
    assert run(r, failing(2)) == (
        "ok",
        ["failure 1 -> retry 1 in 0.5 s", "failure 2 -> retry 2 in 1 s"],
    )
    assert time.sleeps == [0.5, 1.0]
    time.sleeps.clear()
    with pytest.raises(Stopped) as err:
        run(r, failing(99))
    assert time.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert err.value.stop == GaveUp(failures=6, wait_s=3.0, why="")


def test_other_exceptions_pass_through_without_a_retry() -> None:
    time = FakeTime()

    def broken(call: Call) -> str:
        raise KeyError("not retryable")

    with pytest.raises(KeyError):
        run(retrier(time), broken)
    assert time.sleeps == []


def test_a_caller_can_ask_for_a_longer_wait_and_its_own_number_of_retries() -> None:
    time = FakeTime()
    ran = run(retrier(time), failing(1), wait_at_least=lambda: 6.0, retries=1)
    assert ran == ("ok", ["failure 1 -> retry 1 in 6 s"]) and time.sleeps == [6.0]
    with pytest.raises(Stopped):
        run(retrier(time), failing(2), retries=1)


def test_the_servers_pause_delays_requests_and_retries_and_a_long_one_sends_nothing() -> None:
    time = FakeTime()
    r = retrier(time, max_wait_s=60.0)
    r.pause(3.0, "rate limited (HTTP 429), Retry-After 3 s")
    assert run(r, failing(1)) == ("ok", ["failure 1 -> retry 1 in 3 s"])  # not 0.5
    r.pause(7.0, "banned for 7 s")
    r.before_request(Call(r), "BTC/USDT: fetch_ohlcv")
    assert time.sleeps == [3.0, 7.0]
    r.pause(3600.0, "IP banned by binance (HTTP 418) for 3600 s")
    r.pause(10.0, "a shorter pause does not end a ban")
    with pytest.raises(TransientExchangeError) as err:
        r.before_request(Call(r), "BTC/USDT: fetch_ohlcv")
    assert str(err.value) == (
        "BTC/USDT: fetch_ohlcv not sent: IP banned by binance (HTTP 418) for 3600 s; "
        "3600 s left, no request until then"
    )
    assert time.sleeps == [3.0, 7.0]
    with pytest.raises(Stopped, match="HTTP 418"):  # a retry would wait out the ban: not made
        run(r, failing(1))


def test_a_deadline_bounds_the_whole_call_and_nested_calls_share_it() -> None:
    time = FakeTime()
    r = retrier(time, backoff_base_s=1.0, deadline_s=5.0)
    with pytest.raises(Stopped) as err:
        run(r, failing(99))
    assert time.sleeps == [1.0, 2.0]  # the next wait, 4 s, would end 7 s after the start
    assert err.value.stop.wait_s == 4.0
    assert "would pass the call's deadline of 5.0 s" in err.value.stop.why
    outer = Call(r)
    time.t += 4.5
    r.pause(1.0, "Retry-After 1 s")
    with pytest.raises(TransientExchangeError, match="1 s left, no request until then"):
        r.before_request(Call(r, within=outer), "BTC/USDT: fetch_order")
    r.before_request(Call(r), "BTC/USDT: fetch_order")  # a call of its own may wait 1 s
    assert time.sleeps == [1.0, 2.0, 1.0]


def test_no_deadline_by_default_only_the_longest_single_wait() -> None:
    time = FakeTime()
    r = retrier(time, max_retries=10, backoff_base_s=8.0, backoff_max_s=8.0)
    with pytest.raises(Stopped) as err:
        run(r, failing(99))
    assert time.sleeps == [8.0] * 10  # 80 s in all: each wait is under max_wait_s
    assert err.value.stop.why == ""


@pytest.mark.parametrize(
    ("text", "headers", "expected"),
    [
        (
            "binance 418 Way too many requests",
            {},
            (120.0, "IP banned by binance (HTTP 418) for 120 s"),
        ),
        ("418 banned", {"Retry-After": "7"}, (7.0, "IP banned by binance (HTTP 418) for 7 s")),
        ("429 Too many", {"retry-after": "3"}, (3.0, "rate limited (HTTP 429), Retry-After 3 s")),
        ("-1003 Too many", {"Retry-After": "3"}, (3.0, "rate limited (HTTP 429), Retry-After 3 s")),
        ("429 Too many", {}, None),
        ("429 Too many", {"Retry-After": "soon"}, None),
    ],
)
def test_server_pause_reads_the_status_and_retry_after(
    text: str, headers: dict[str, str], expected: tuple[float, str] | None
) -> None:
    assert server_pause(text, headers, "binance") == expected
