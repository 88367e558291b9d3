"""`python supervisor.py` for real: startup lines, a heartbeat, SIGTERM -> orderly stop, exit 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.botproc import BotProcess
from tests.notify_receiver import Receiver


@pytest.mark.slow
def test_bot_starts_beats_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    receiver = Receiver()
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        f"""
notify: {{targets: [{{url_env: TEST_NOTIFY_URL, events: [start, stop, fill]}}]}}
data_dir: {tmp_path / "var"}
heartbeat_s: 2
health_s: 2
universe: {{mode: static, symbols: [BTC/USDT, ETH/USDT, PEPE/USDT]}}
training: {{window_days: 3, max_iter: 30}}
promotion: {{min_net_return_pct: -100, min_auc: 0}}
admin: {{port: 0}}
"""
    )
    with receiver, BotProcess(settings, env={"TEST_NOTIFY_URL": receiver.url}) as bot:
        # real processes doing real work (two fits): wait for the event, not for a time
        beat = "Bot heartbeat: 2 active symbols, 1 blocked"
        assert bot.wait_for(beat, timeout=120), "no heartbeat with 2 active symbols:\n" + bot.text
        assert bot.stop() == 0
        titles = receiver.titles()
    text = bot.text
    # notifications: the start first, the stop last (with its reason), any fills between
    assert titles[0] == "tradeactors started" and titles[-1] == "tradeactors stopped cleanly"
    assert receiver.posts[-1]["message"] == "SIGTERM"
    assert "Main loop started. Health checks every 2s, heartbeat every 2s" in text
    assert "Training/coverage checks every 300s" in text
    assert "PEPE/USDT: NEW -> BLOCKED_HISTORY (12.5 days of history < 14 minimum; eligible" in text
    assert "BTC/USDT: TRAINING -> ACTIVE (model v00000" in text
    assert "Stopping (SIGTERM): coverage, trainers, trader, market data, model store" in text
    assert text.rstrip().endswith("Stopped cleanly.")
    assert "Traceback" not in text
    # the log file under the data folder has the console's lines, and its path was printed
    log_file = tmp_path / "var" / "logs" / "tradeactors.log"
    assert f"log file {log_file} (version " in text
    # the same lines; two threads logging at once may reach the two handlers in either order
    assert sorted(log_file.read_text().splitlines()) == sorted(text.splitlines())
