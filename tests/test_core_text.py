"""The shared small formats: UTC times, timeframe lengths, library messages as one line."""

from __future__ import annotations

import pytest

from core.text import one_line
from core.timefmt import format_utc
from core.timeframes import timeframe_ms, timeframe_s

T = 1_795_687_265.0  # 2026-11-26 10:01:05 UTC


def test_times_are_utc_in_one_format() -> None:
    assert format_utc(T) == "2026-11-26 10:01 UTC"
    assert format_utc(T, seconds=True) == "2026-11-26 10:01:05 UTC"
    assert format_utc(T, seconds=True, zone=False) == "2026-11-26 10:01:05"
    assert format_utc(T, zone=False) == "2026-11-26 10:01"


def test_timeframe_seconds_agree_with_milliseconds() -> None:
    for tf, seconds in (("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600), ("1d", 86_400)):
        assert timeframe_s(tf) == seconds == timeframe_ms(tf) // 1000
    for bad in ("1w", "7m", "m", ""):
        with pytest.raises(ValueError, match="timeframe"):
            timeframe_s(bad)


def test_a_library_message_becomes_one_plain_line() -> None:
    assert one_line("Expected `int`, got `str`\n  - at `$.coverage`") == (
        "Expected int, got str - at $.coverage"
    )
