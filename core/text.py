"""Text for people out of a library's message."""

from __future__ import annotations


def one_line(message: str) -> str:
    """`message` as one plain line: msgspec quotes field paths in backticks and may wrap."""
    return " ".join(message.replace("`", "").split())


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 position`, `2 positions`, `0 positions`; `words` for irregular plurals."""
    return f"{n} {word if n == 1 else (words or word + 's')}"
