"""Text for people: a library's message as one line, shares and percentages."""

from __future__ import annotations


def one_line(message: str) -> str:
    """`message` as one plain line: msgspec quotes field paths in backticks and may wrap."""
    return " ".join(message.replace("`", "").split())


def percent(share: float | None) -> str:
    """A share as a percentage, `0.257` -> `25.7%`; `-` when there is none (no round trip)."""
    return "-" if share is None else f"{100 * share:.1f}%"


def signed_percent(pct: float | None) -> str:
    """A percentage with its sign, `1.234` -> `+1.23%`; `-` when there is none."""
    return "-" if pct is None else f"{pct:+.2f}%"


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 position`, `2 positions`, `0 positions`; `words` for irregular plurals."""
    return f"{n} {word if n == 1 else (words or word + 's')}"
