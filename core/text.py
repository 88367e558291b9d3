"""Text for people out of a library's message."""

from __future__ import annotations


def one_line(message: str) -> str:
    """`message` as one plain line: msgspec quotes field paths in backticks and may wrap."""
    return " ".join(message.replace("`", "").split())
