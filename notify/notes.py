"""What is worth a notification, and its words: pure functions over the system's events."""

from __future__ import annotations

from dataclasses import dataclass

from actors.messages import ActorRestarted, OrderPlaced, Reconciled, SymbolTransition

ACTIVE, BLOCKED_FAILED = "ACTIVE", "BLOCKED_FAILED"


@dataclass(frozen=True)
class Note:
    """One notification: the event kinds it answers to (`NotifyTarget.events`) and its text."""

    kinds: frozenset[str]
    title: str
    body: str


def note(kind: str, title: str, body: str = "") -> Note:
    return Note(frozenset({kind}), title, body)


def describe(event: object, quote: str) -> Note | None:
    """The notification for an event of the system's topic; None when it is not one."""
    if isinstance(event, OrderPlaced):
        return note(
            "fill",
            f"{event.symbol}: {event.side.upper()} {event.amount:.8g} at {event.price:.6g} {quote}",
            f"{event.intent}: {event.why} (order {event.client_order_id})",
        )
    if isinstance(event, SymbolTransition):
        if event.new == BLOCKED_FAILED:
            return note("blocked", f"{event.symbol}: blocked, training failed", event.reason)
        if event.old == ACTIVE and event.new != ACTIVE:
            return note(
                "blocked",
                f"{event.symbol}: stopped trading ({event.old} -> {event.new})",
                event.reason,
            )
        return None
    if isinstance(event, ActorRestarted):
        return note("restart", f"{event.name} restarted", f"it died: {event.error}")
    if isinstance(event, Reconciled) and event.mismatches:
        return note(
            "mismatch",
            f"Reconciliation with {event.exchange}: {event.mismatches} mismatches",
            event.summary,
        )
    return None


def stopped(reason: str, exit_code: int, restart_limit: bool) -> Note:
    """The bot stopped; also a `restart` notification when the restart limit stopped it."""
    kinds = {"stop", "restart"} if restart_limit else {"stop"}
    how = "cleanly" if exit_code == 0 else f"with exit code {exit_code}"
    return Note(frozenset(kinds), f"tradeactors stopped {how}", reason)
