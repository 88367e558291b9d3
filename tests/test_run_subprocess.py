"""`python supervisor.py` for real: startup lines, a heartbeat, SIGTERM -> orderly stop, exit 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bot_starts_beats_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        f"""
data_dir: {tmp_path / "var"}
heartbeat_s: 2
health_s: 2
universe: {{mode: static, symbols: [BTC/USDT, ETH/USDT, PEPE/USDT]}}
training: {{window_days: 3, max_iter: 30}}
admin: {{port: 0}}
"""
    )
    proc = subprocess.Popen(
        [sys.executable, "supervisor.py", "--settings", str(settings)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Bot heartbeat: 2 active symbols, 1 blocked" in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # real processes doing real work (two fits): wait for the event, not for a time
        assert seen.wait(timeout=120), "no heartbeat with 2 active symbols:\n" + "".join(lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    text = "".join(lines)
    assert "Main loop started. Health checks every 2s, heartbeat every 2s" in text
    assert "Training/coverage checks every 300s" in text
    assert "PEPE/USDT: NEW -> BLOCKED_HISTORY (12.5 days of history < 14 minimum; eligible" in text
    assert "BTC/USDT: TRAINING -> ACTIVE (model v00000" in text
    assert "Stopping (SIGTERM): coverage, trainers, trader, model store" in text
    assert text.rstrip().endswith("Stopped cleanly.")
    assert "Traceback" not in text
