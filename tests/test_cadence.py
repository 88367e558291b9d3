"""The coverage interval gate: the one rule the coverage actor and the invariant monitor share."""

from __future__ import annotations

from policy.cadence import GATE_TOLERANCE_S, too_soon


def test_a_check_is_too_soon_until_the_interval_less_the_tolerance_has_passed() -> None:
    assert too_soon(1000.0, 1000.0 + 60, interval_s=300)
    assert too_soon(1000.0, 1000.0 + 300 - GATE_TOLERANCE_S - 0.001, interval_s=300)
    # a clock tick a hair early (the startup check ran after the timer was armed) is on time
    assert not too_soon(1000.0, 1000.0 + 300 - GATE_TOLERANCE_S, interval_s=300)
    assert not too_soon(1000.0, 1000.0 + 300, interval_s=300)
    assert not too_soon(1000.0, 1000.0 + 900, interval_s=300)
