"""Admin `status` while every exchange request stalls 10 s: the whole bot against the loopback
fake Binance.

    python benchmarks/admin_stall.py [--symbols 20] [--seconds 60] [--stall-s 10] [--speed 6]

The live bot's System (model store, coverage, market data, trader, ccxt clients per
role built from settings, the admin websocket on 127.0.0.1) with a model on disk for
each symbol, on a fast clock shared with the fake (benchmarks/_fake_venue.py, its own
process): at x6 a candle closes every 10 s of wall time, the health check runs every
10 s, and coverage checks and refreshes the universe every 50 s. Once the bot trades,
the fake holds every request `--stall-s` seconds, and an admin client asks `Status`
ten times a second for `--seconds`: the status answer needs coverage, the model store
and the trader, whose handlers must not be waiting on the exchange. Before the stall,
the same for 10 s as the baseline.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _common
import msgspec
from _fake_venue import FakeVenue

from actors.clock import RealClock
from actors.messages import CoverageChecked, Heartbeat, SignalProduced, UniverseRefreshed
from app.builders import build_admin_server, build_ccxt_exchange
from app.system import System
from config.settings import Settings
from exchange.synthetic import synthetic_specs
from models import artifacts
from models.pool import TrainingPool
from tests.admin_client import TOKEN, Client
from tests.fake_binance import API_KEY, API_SECRET
from tests.harness import stage_model

ANCHOR_MS = int(_common.T0 * 1000)
KEYS = {"TRADEACTORS_API_KEY": API_KEY, "TRADEACTORS_API_SECRET": API_SECRET}


class Seen:
    """Counts the events that show which handlers ran."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.traded = threading.Event()

    def tell(self, message: Any) -> None:
        if isinstance(message, SignalProduced):
            self.traded.set()
        if isinstance(message, SignalProduced | Heartbeat | CoverageChecked | UniverseRefreshed):
            with self.lock:
                name = type(message).__name__
                self.counts[name] = self.counts.get(name, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)


def ask_status(client: Client, seconds: float) -> list[float]:
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        reply = client.call("Status")
        samples.append(time.perf_counter() - start)
        assert reply.get("type") == "StatusReply", reply
        time.sleep(0.1)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help="of stall, in wall time")
    parser.add_argument("--stall-s", type=float, default=10.0)
    parser.add_argument("--speed", type=float, default=6.0, help="clock speed (x real time)")
    args = parser.parse_args()
    cap = _common.thread_cap()
    load = os.getloadavg()[0]
    symbols = [spec.symbol for spec in synthetic_specs(args.symbols)]
    wall_start = time.time()
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeVenue(args.symbols, 0.0, args.speed, wall_start, ANCHOR_MS) as venue,
    ):
        models_dir = Path(tmp) / "models"
        for i, symbol in enumerate(symbols):
            artifacts.publish(models_dir, stage_model(models_dir, symbol, seed=i + 1))
        settings = msgspec.convert(
            {
                "data_dir": tmp,
                "exchange": {"kind": "ccxt", "base_url": venue.url},
                "universe": {"mode": "static", "symbols": symbols, "refresh_s": 300},
                "heartbeat_s": 60,
                "health_s": 60,
                "trading": {"entry_threshold": 1.0, "candle_delay_s": 0.5},
                "admin": {"port": 0},
            },
            Settings,
        )
        clock = RealClock(speed=args.speed, start=ANCHOR_MS / 1000, wall_start=wall_start)
        system = System(
            settings,
            clock,
            build_ccxt_exchange(settings, clock, KEYS),
            TrainingPool(workers=1, kind="thread"),
        )
        seen = Seen()
        system.events.subscribe("bench", seen)
        admin = build_admin_server(system, TOKEN, port=0)
        system.start()
        admin.start()
        try:
            if not seen.traded.wait(120):
                raise RuntimeError("the bot did not trade within 120 s")
            client = Client(admin.url)
            baseline = ask_status(client, 10.0)
            venue.stall(args.stall_s)
            before = seen.snapshot()
            stalled = ask_status(client, args.seconds)
            during = {k: v - before.get(k, 0) for k, v in seen.snapshot().items()}
            client.close()
        finally:
            admin.stop()
            venue.stall(0.0)
            system.stop()
            clock.stop()
    cap.restore_original_limits()
    rows = []
    for name, samples in (("exchange answering", baseline), ("every request stalled", stalled)):
        p50, p99 = _common.percentiles_ms(samples)
        rows.append((name, len(samples), p50, p99, max(samples) * 1e3))
    print(
        f"admin Status round trip (websocket on 127.0.0.1) asked 10 times a second; "
        f"{args.symbols} symbols; the fake holds every request {args.stall_s:g} s; clock "
        f"x{args.speed:g}; load average {load:.1f} at start (the machine is shared with other "
        "agents' work: absolute times vary)"
    )
    print(_common.table(["exchange", "asks", "p50 ms", "p99 ms", "max ms"], rows))
    print(
        "while stalled, the bot went on handling: "
        + ", ".join(f"{n} {name}" for name, n in sorted(during.items()))
        + " (SignalProduced stays 0: no candle arrives)"
    )
    p99 = rows[1][3]
    _common.result("admin_stall", p50_ms=rows[1][2], p99_ms=p99, baseline_p99_ms=rows[0][3])
    print(f"admin status p99 under a stalled exchange: {p99:.0f} ms")


if __name__ == "__main__":
    main()
