"""Supervision: one-for-one restarts within a budget; a start failure counts as a death."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.messages import ActorDied, ActorRestarted, GetSymbols, Heartbeat, StopRequested
from app.supervision import Supervisor
from policy.restarts import RestartBudget
from tests.harness import Bot


class Boom(Exception):
    pass


def _crash(bot: Bot, name: str) -> None:
    """Make the actor's handler raise, as a bug would."""
    ref = bot.system.addresses[name].ref
    assert ref is not None
    ref.tell(_Explode())


class _Explode:
    """A message that makes a patched actor raise in its handler (see _make_explosive)."""


@pytest.fixture
def bot(tmp_path: Path):
    b = Bot(tmp_path, ["BTC/USDT", "PEPE/USDT"]).start()
    yield b
    b.stop()


def _make_explosive(monkeypatch: pytest.MonkeyPatch, cls: type) -> None:
    original = cls.receive

    def receive(self: Any, message: Any) -> Any:
        if isinstance(message, _Explode):
            raise Boom("handler bug")
        return original(self, message)

    monkeypatch.setattr(cls, "receive", receive)


def test_dead_actor_is_restarted_and_gets_its_state_back(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actors.trader import TraderActor

    _make_explosive(monkeypatch, TraderActor)
    supervisor = Supervisor(bot.system)
    old = bot.system.addresses["trader"].ref
    _crash(bot, "trader")
    died = bot.system.mailbox.queue.get(timeout=10)
    assert isinstance(died, ActorDied) and died.name == "trader" and "handler bug" in died.error
    assert supervisor.handle(died) is True
    bot.settle()
    new = bot.system.addresses["trader"].ref
    assert new is not None and new is not old and new.is_alive() and not old.is_alive()
    assert [e.name for e in bot.events.of(ActorRestarted)] == ["trader"]
    # the new trader re-subscribed: it knows the states and models and keeps its timers
    bot.events.clear()
    bot.clock.advance(bot.settings.heartbeat_s)
    bot.settle()
    beats = bot.events.of(Heartbeat)
    assert len(beats) == 1 and beats[0].active == 1 and beats[0].blocked == 1


def test_restart_budget_exceeded_stops_the_bot_with_non_zero_exit(
    bot: Bot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from actors.coverage import CoverageActor

    _make_explosive(monkeypatch, CoverageActor)
    supervisor = Supervisor(bot.system, RestartBudget(max_restarts=3, within_s=60))
    outcomes = []
    for _ in range(4):
        _crash(bot, "coverage")
        died = bot.system.mailbox.queue.get(timeout=10)
        outcomes.append(supervisor.handle(died))
        bot.settle()
    assert outcomes == [True, True, True, False]
    assert supervisor.exit_code == 1
    assert "more than 3 restarts in 60 s; stopping the bot" in caplog.text


def test_an_exception_answering_an_ask_is_logged_reported_and_counts_toward_the_limit(
    bot: Bot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """pykka hands an ask's exception back to the caller and keeps the actor running: the
    supervisor would never hear of a handler that fails every time it is asked."""
    from actors.coverage import CoverageActor

    _make_explosive(monkeypatch, CoverageActor)
    supervisor = Supervisor(bot.system, RestartBudget(max_restarts=3, within_s=60))
    outcomes = []
    for _ in range(4):
        with pytest.raises(Boom, match="handler bug"):  # the caller still learns of it
            bot.system.addresses["coverage"].ask(_Explode())
        died = bot.system.mailbox.queue.get(timeout=10)
        assert isinstance(died, ActorDied) and died.name == "coverage"
        outcomes.append(supervisor.handle(died))
        bot.settle()
    assert outcomes == [True, True, True, False]
    assert (
        "ERROR" in caplog.text
        and "coverage failed handling _Explode: Boom: handler bug" in caplog.text
    )


def test_exception_in_on_start_counts_as_a_death(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actors.model_store import ModelStoreActor

    calls = {"n": 0}
    original = ModelStoreActor.started

    def flaky_start(self: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Boom("disk not mounted")
        original(self)

    monkeypatch.setattr(ModelStoreActor, "started", flaky_start)
    bot = Bot(tmp_path, ["BTC/USDT"])
    bot.system.start()
    died = bot.system.mailbox.queue.get(timeout=10)
    assert isinstance(died, ActorDied) and died.during_start and "disk not mounted" in died.error
    assert Supervisor(bot.system).handle(died)
    bot.settle()
    assert bot.system.addresses["model_store"].is_alive()
    # coverage's subscription reached the new store: it evaluated and trained BTC
    states = bot.ask("coverage", GetSymbols())
    bot.stop()
    assert calls["n"] == 2
    assert {r.symbol: r.state for r in states.records} in (
        {"BTC/USDT": "ACTIVE"},
        {"BTC/USDT": "TRAINING"},
    )


def test_trainer_death_is_not_restarted(bot: Bot) -> None:
    supervisor = Supervisor(bot.system)
    assert supervisor.handle(ActorDied(name="trainer:BTC/USDT", error="x")) is True
    assert bot.system.trainers.symbols() == []


def test_restart_budget_window_slides() -> None:
    budget = RestartBudget()
    assert budget.allow("x", 0) and budget.allow("x", 1) and budget.allow("x", 2)
    assert not budget.allow("x", 3)
    assert budget.allow("x", 62)  # the window slid past the first deaths


def test_budget_is_per_actor() -> None:
    budget = RestartBudget(max_restarts=1, within_s=60)
    assert budget.allow("trader", 0)
    assert budget.allow("coverage", 0)
    assert not budget.allow("trader", 1)


def test_stop_requested_returns_false(bot: Bot) -> None:
    assert Supervisor(bot.system).handle(StopRequested(reason="test")) is False
    assert bot.system.addresses["trader"].is_alive()  # handle() decides; run() stops in order
