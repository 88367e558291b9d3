"""An injected clock for code that waits: nothing that uses it really sleeps."""

from __future__ import annotations

from typing import Any


class FakeTime:
    """Injected sleep + monotonic clock: a sleep records the wait and moves the clock."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: Any = None

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.t += seconds
        if self.on_sleep is not None:
            self.on_sleep(seconds)
