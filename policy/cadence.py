"""The coverage check's interval gate (DESIGN.md invariant 2), decided in one place.

The coverage actor skips a check that comes too soon; the simulation's invariant
monitor flags one. Both ask `too_soon`, so they cannot disagree on the tolerance.
"""

from __future__ import annotations

# A tick fired by the clock can arrive a hair early relative to the last check (the
# startup check happens after the periodic timer was armed); allow for it.
GATE_TOLERANCE_S = 1.0


def too_soon(last_at: float, now: float, interval_s: float) -> bool:
    """True if a check at `now` would come less than `interval_s` after the one at `last_at`."""
    return now - last_at < interval_s - GATE_TOLERANCE_S
