"""Times as people read them: epoch seconds as UTC text, in one format everywhere.

`2026-11-26 09:14` (minutes: symbol tables, lifecycle reasons), `2026-11-26 09:14:05`
(seconds: log stamps, events), with ` UTC` appended where the text stands alone.
Always UTC, like the exchange and the logs, whatever the machine's time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_utc(t: float, *, seconds: bool = False, zone: bool = True) -> str:
    """`t` (epoch seconds) as 'YYYY-MM-DD HH:MM[:SS][ UTC]'."""
    text = datetime.fromtimestamp(t, tz=UTC).strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    )
    return f"{text} UTC" if zone else text
