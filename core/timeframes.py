"""Candle timeframes as ccxt spells them ('1m', '5m', '1h', '1d'), converted to milliseconds
or seconds: the one parser of a timeframe."""

from __future__ import annotations

import re

MINUTE_MS = 60_000
DAY_MS = 86_400_000

_UNIT_MS = {"m": MINUTE_MS, "h": 60 * MINUTE_MS, "d": DAY_MS}
_PATTERN = re.compile(r"([1-9][0-9]*)([mhd])")


def timeframe_ms(tf: str) -> int:
    """Length of one candle of timeframe `tf` in milliseconds.

    Accepts '<n>m', '<n>h' and '<n>d' whose length divides a UTC day or is a
    whole number of days (1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, ...),
    so that candles are aligned to multiples of their length since the epoch.
    Raises ValueError naming anything else ('1w', '7m', 'abc').
    """
    match = _PATTERN.fullmatch(tf) if isinstance(tf, str) else None
    if match is None:
        raise ValueError(f"unknown timeframe {tf!r}: expected e.g. '1m', '5m', '15m', '1h', '1d'")
    ms = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if DAY_MS % ms != 0 and ms % DAY_MS != 0:
        raise ValueError(
            f"unsupported timeframe {tf!r}: its length must divide a day or be whole days"
        )
    return ms


def timeframe_s(tf: str) -> int:
    """Length of one candle of timeframe `tf` in seconds; ValueError as `timeframe_ms`."""
    return timeframe_ms(tf) // 1000
