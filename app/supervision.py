"""The supervisor's loop: restarts a permanent actor that dies (one-for-one, at most 3 times
in 60 s), stops the bot in order on SIGINT/SIGTERM or past the restart limit.
"""

from __future__ import annotations

import logging
import queue
import signal
from types import FrameType
from typing import Any

from actors.messages import ActorDied, ActorRestarted, StopRequested
from admin.server import AdminServer
from app.system import PERMANENT, System
from policy.restarts import RestartBudget

log = logging.getLogger("tradeactors.supervisor")


class Supervisor:
    """Watches the permanent actors and restarts them one-for-one within a budget."""

    def __init__(
        self,
        system: System,
        budget: RestartBudget | None = None,
        admin: AdminServer | None = None,
    ) -> None:
        self.system = system
        self.budget = budget or RestartBudget(max_restarts=3, within_s=60.0)
        self.admin = admin
        self.exit_code = 0
        self.stop_reason = "not started"  # why the bot stopped, for the stop notification
        self.restart_limit = False  # stopped because an actor died too often

    def handle(self, message: Any) -> bool:
        """Handle one message from the supervisor mailbox; False when the bot must stop."""
        if isinstance(message, StopRequested):
            log.info(
                "Stopping (%s): coverage, trainers, trader, market data, model store",
                message.reason,
            )
            self.stop_reason = message.reason
            return False
        if not isinstance(message, ActorDied):
            log.warning("Supervisor: unexpected message %s", type(message).__name__)
            return True
        if message.name not in PERMANENT:
            log.info("%s stopped on an error (temporary actor, not restarted)", message.name)
            return True
        when = "while starting" if message.during_start else "while running"
        now = self.system.clock.now()
        if not self.budget.allow(message.name, now):
            log.error(
                "%s died %s (%s): more than %d restarts in %.0f s; stopping the bot",
                message.name,
                when,
                message.error,
                self.budget.max_restarts,
                self.budget.within_s,
            )
            self.exit_code = 1
            self.restart_limit = True
            self.stop_reason = (
                f"{message.name} died {when} ({message.error}): more than "
                f"{self.budget.max_restarts} restarts in {self.budget.within_s:.0f} s"
            )
            return False
        log.warning("%s died %s (%s); restarting it", message.name, when, message.error)
        self.system.start_actor(message.name)
        self.system.events.publish(ActorRestarted(at=now, name=message.name, error=message.error))
        return True

    def run(self) -> int:
        """Start everything, supervise until a stop is requested, stop in order; the exit code."""
        stop_signal: list[str] = []

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop_signal.append(signal.Signals(signum).name)

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        self.system.start()
        inbox = self.system.mailbox.queue
        try:
            if self.admin is not None:
                try:
                    self.admin.start()
                except OSError as exc:
                    log.error(
                        "%s; stopping the bot (change admin.port or admin.enabled)",
                        exc.strerror or exc,
                    )
                    self.exit_code = 1
                    self.stop_reason = f"admin server: {exc.strerror or exc}"
                    return self.exit_code
            while True:
                if stop_signal:
                    inbox.put(StopRequested(reason=stop_signal.pop()))
                try:
                    message = inbox.get(timeout=0.25)
                except queue.Empty:
                    continue
                if not self.handle(message):
                    break
        finally:
            if self.admin is not None:
                self.admin.stop()
            self.system.stop()
        log.info(
            "Stopped%s.", " cleanly" if self.exit_code == 0 else " after an unrecoverable failure"
        )
        return self.exit_code
