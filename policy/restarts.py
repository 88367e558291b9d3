"""Restart intensity: how many times a permanent actor may be restarted before the bot stops."""

from __future__ import annotations

from collections import deque


class RestartBudget:
    """At most `max_restarts` restarts within any `within_s` window (per actor)."""

    def __init__(self, max_restarts: int = 3, within_s: float = 60.0) -> None:
        self.max_restarts = max_restarts
        self.within_s = within_s
        self._history: dict[str, deque[float]] = {}

    def allow(self, name: str, now: float) -> bool:
        """Record a death of `name` at `now`; True if it may be restarted once more."""
        recent = self._history.setdefault(name, deque())
        while recent and now - recent[0] > self.within_s:
            recent.popleft()
        if len(recent) >= self.max_restarts:
            return False
        recent.append(now)
        return True
