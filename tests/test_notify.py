"""Notifications: which events, their words, delivery through apprise to a local webhook,
retries, a dead target logged once, and a full queue that never blocks an actor."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import supervisor
from actors.base import Topic
from actors.messages import (
    ActorRestarted,
    Heartbeat,
    OrderPlaced,
    Reconciled,
    SymbolTransition,
)
from config.settings import NotifySettings, Settings
from notify.notes import Note, describe, note, stopped
from notify.notifier import Notifier, NotifyError, Target, apprise_target
from policy.risk import Intent
from tests.notify_receiver import Receiver

FILL = OrderPlaced(
    at=0.0,
    symbol="BTC/USDT",
    client_order_id="ta-1",
    side="buy",
    intent=Intent.ENTRY,
    amount=0.0015,
    price=65000.5,
    why="P(up) 0.612 >= entry threshold 0.550",
)


def transition(old: str, new: str) -> SymbolTransition:
    return SymbolTransition(at=0.0, symbol="ETH/USDT", old=old, new=new, reason="because")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


# --- what is worth a notification ---------------------------------------------------------


def test_fill_names_symbol_side_amount_price_and_why() -> None:
    got = describe(FILL, "USDT")
    assert got == Note(
        frozenset({"fill"}),
        "BTC/USDT: BUY 0.0015 at 65000.5 USDT",
        "entry: P(up) 0.612 >= entry threshold 0.550 (order ta-1)",
    )


@pytest.mark.parametrize(
    ("old", "new", "title"),
    [
        ("RETRY_WAIT", "BLOCKED_FAILED", "ETH/USDT: blocked, training failed"),
        ("ACTIVE", "BLOCKED_MANUAL", "ETH/USDT: stopped trading (ACTIVE -> BLOCKED_MANUAL)"),
        ("ACTIVE", "RETIRED", "ETH/USDT: stopped trading (ACTIVE -> RETIRED)"),
    ],
)
def test_a_symbol_blocked_or_losing_its_model(old: str, new: str, title: str) -> None:
    assert describe(transition(old, new), "USDT") == note("blocked", title, "because")


@pytest.mark.parametrize(("old", "new"), [("NEW", "TRAINING"), ("TRAINING", "ACTIVE")])
def test_ordinary_transitions_are_not_notified(old: str, new: str) -> None:
    assert describe(transition(old, new), "USDT") is None


def test_restart_mismatch_and_nothing_for_the_rest() -> None:
    restart = describe(ActorRestarted(at=0.0, name="trader", error="boom"), "USDT")
    assert restart == note("restart", "trader restarted", "it died: boom")
    clean = Reconciled(at=0.0, exchange="paper", resolved={}, positions=1, mismatches=0, summary="")
    assert describe(clean, "USDT") is None
    apart = msgspec.structs.replace(clean, mismatches=2, summary="2 apart")
    assert describe(apart, "USDT") == note(
        "mismatch", "Reconciliation with paper: 2 mismatches", "2 apart"
    )
    assert describe(Heartbeat(at=0.0, active=1, blocked=0, open_positions=0), "USDT") is None


def test_a_stop_on_the_restart_limit_is_also_a_restart_notification() -> None:
    assert stopped("SIGTERM", 0, restart_limit=False).kinds == {"stop"}
    limit = stopped("trader died 4 times", 1, restart_limit=True)
    assert (
        limit.kinds == {"stop", "restart"} and limit.title == "tradeactors stopped with exit code 1"
    )


# --- delivery -------------------------------------------------------------------------------


def test_events_reach_the_targets_that_want_them_through_apprise(receiver: Receiver) -> None:
    with Receiver() as stops_only:
        notifier = Notifier(
            [
                apprise_target(receiver.url, ["fill", "stop"]),
                apprise_target(stops_only.url, ["stop"]),
            ],
            quote="USDT",
        )
        topic = Topic()
        topic.subscribe("notifier", notifier)
        notifier.start()
        topic.publish(FILL)
        topic.publish(Heartbeat(at=0.0, active=1, blocked=0, open_positions=0))
        assert receiver.wait_for(1)
        notifier.notify(stopped("SIGTERM", 0, restart_limit=False))
        notifier.close()
        assert stops_only.titles() == ["tradeactors stopped cleanly"]
    assert receiver.titles() == [
        "BTC/USDT: BUY 0.0015 at 65000.5 USDT",
        "tradeactors stopped cleanly",
    ]
    assert receiver.posts[0]["message"] == describe(FILL, "USDT").body  # type: ignore[union-attr]


def test_a_failed_send_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    with Receiver(fail=2) as flaky:
        notifier = Notifier([apprise_target(flaky.url, ["fill"])], "USDT", retries=3, retry_s=0.01)
        notifier.start()
        notifier.tell(FILL)
        assert flaky.wait_for(1)
        notifier.close()
        assert flaky.requests == 3
    assert "notify" not in caplog.text


def test_an_unreachable_target_is_logged_once_and_then_again_when_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tradeactors.notify")
    answering = False
    calls: list[str] = []
    cond = threading.Condition()

    def send(n: Note) -> tuple[bool, str]:  # the outside world: down, then back
        with cond:
            calls.append(n.title)
            cond.notify_all()
            return (True, "") if answering else (False, "Connection refused")

    def wait_calls(count: int) -> bool:
        with cond:
            return cond.wait_for(lambda: len(calls) >= count, timeout=30)

    target = Target("json://127.0.0.1:9", frozenset({"fill"}), send)
    notifier = Notifier([target], "USDT", retries=2, retry_s=0.001)
    notifier.start()
    notifier.tell(FILL)
    assert wait_calls(3)  # the first attempt and two retries
    notifier.tell(FILL)
    notifier.tell(FILL)
    assert wait_calls(5)  # down: one attempt each
    with cond:
        answering = True
    notifier.tell(FILL)
    assert wait_calls(6)
    notifier.close()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "notify json://127.0.0.1:9: not delivered after 3 attempts (Connection refused); the bot "
        "goes on, and this target's failures are not logged again until it answers",
        "notify json://127.0.0.1:9: answers again (notes lost while it did not: 3)",
    ]


def test_an_unreachable_apprise_target_does_not_stop_the_others(receiver: Receiver) -> None:
    dead = apprise_target(f"json://127.0.0.1:{closed_port()}", ["fill"])
    notifier = Notifier([dead, apprise_target(receiver.url, ["fill"])], "USDT", retry_s=0.01)
    notifier.start()
    notifier.tell(FILL)
    assert receiver.wait_for(1)
    notifier.close()
    assert notifier._lanes[0].down and not notifier._lanes[1].down


def test_a_full_queue_drops_without_blocking_the_actor(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    sent: list[str] = []

    def send(n: Note) -> tuple[bool, str]:  # a target that hangs until released
        release.wait(10)
        sent.append(n.title)
        return True, ""

    notifier = Notifier([Target("slow", frozenset({"fill"}), send)], "USDT", queue_size=2)
    notifier.start()
    for _ in range(10):  # returns at once although the target hangs
        notifier.tell(FILL)
    assert not release.is_set()
    release.set()
    notifier.close()
    assert 2 <= len(sent) <= 3  # the one being sent when the queue filled, and the queue
    drops = [r for r in caplog.records if "dropping new ones" in r.getMessage()]
    assert len(drops) == 1


# --- settings ---------------------------------------------------------------------------------


def test_target_from_the_environment_and_its_errors(receiver: Receiver) -> None:
    settings = msgspec.convert({"targets": [{"url_env": "NOTIFY_URL"}]}, type=NotifySettings)
    assert Notifier.from_settings(settings, "USDT", {"NOTIFY_URL": receiver.url})
    with pytest.raises(
        NotifyError, match=r"targets\[0\].url_env: the environment variable NOTIFY_URL is not set"
    ):
        Notifier.from_settings(settings, "USDT", {})
    bad = msgspec.convert({"targets": [{"url": "nonsense://x"}]}, type=NotifySettings)
    with pytest.raises(
        NotifyError, match=r"targets\[0\]: not an apprise URL .* \(scheme 'nonsense'\)"
    ):
        Notifier.from_settings(bad, "USDT", {})
    with pytest.raises(msgspec.ValidationError, match="exactly one of url and url_env"):
        msgspec.convert({"targets": [{"url": "json://x", "url_env": "X"}]}, type=NotifySettings)
    assert not Notifier.from_settings(Settings().notify, "USDT", {})


def test_the_log_never_shows_a_targets_token() -> None:
    target = apprise_target("tgram://123456789:AAHsecretsecretsecret/987654", ["fill"])
    assert "secret" not in target.label and target.label.startswith("tgram://")


def test_an_unset_url_variable_stops_the_start_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        f"data_dir: {tmp_path / 'var'}\nadmin: {{port: 0}}\n"
        "notify: {targets: [{url_env: TRADEACTORS_TEST_UNSET_URL}]}\n"
    )
    assert supervisor.main(["--settings", str(settings)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "notify.targets[0].url_env: the environment variable TRADEACTORS_TEST_UNSET_URL is not "
        "set (it holds the target's apprise URL)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.yaml"]
