"""The loopback fake Binance (tests/fake_binance.py) in a process of its own, for benchmarks.

A process of its own so that the bot being measured does not share its interpreter
lock with the exchange. It binds 127.0.0.1 only. Its market runs on a fast clock
shared with the bot (`RealClock(speed, start, wall_start)`): a 1-minute candle
every 60/speed seconds of wall time, so that tens of candle closes take a minute or
two. Every request is delayed `delay_ms` on its way in (network latency); a `stall`
command (on its stdin) holds every request that many seconds instead.

    python benchmarks/_fake_venue.py --symbols 500 --delay-ms 50 --speed 12 \
        --wall-start 1796000000.0 --anchor-ms 1795651200000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PATHS = (
    "/api/v3/time",
    "/api/v3/exchangeInfo",
    "/api/v3/klines",
    "/api/v3/ticker/24hr",
    "/api/v3/order",
    "/api/v3/openOrders",
    "/api/v3/account",
    "/api/v3/myTrades",
)


class FakeVenue:
    """The fake in a child process; `url` once it listens. A context manager."""

    def __init__(
        self, symbols: int, delay_ms: float, speed: float, wall_start: float, anchor_ms: int
    ) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                f"--symbols={symbols}",
                f"--delay-ms={delay_ms}",
                f"--speed={speed}",
                f"--wall-start={wall_start!r}",
                f"--anchor-ms={anchor_ms}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("ready "):
            self.close()
            raise RuntimeError(f"the fake exchange did not start: {line!r}")
        self.url = line.removeprefix("ready ")

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok", f"{text}: no ok"

    def stall(self, seconds: float) -> None:
        """Every request from now on is held `seconds` before it is handled."""
        self.command(f"stall {seconds}")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # EOF: the child stops
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> FakeVenue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve() -> None:
    from exchange.synthetic import synthetic_specs
    from tests.fake_binance import Delay, FakeBinance

    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--speed", type=float, required=True)
    parser.add_argument("--wall-start", type=float, required=True)
    parser.add_argument("--anchor-ms", type=int, required=True)
    args = parser.parse_args()

    def market_ms() -> int:
        return int(args.anchor_ms + (time.time() - args.wall_start) * args.speed * 1000)

    fake = FakeBinance(
        synthetic_specs(args.symbols), anchor_ms=args.anchor_ms, market_ms=market_ms
    ).start()  # 127.0.0.1, a free port

    def delay_all(before_s: float) -> None:
        with fake.lock:
            fake.delays = [Delay(path, None, before_s, 0.0) for path in PATHS]

    delay_all(args.delay_ms / 1000)
    print(f"ready {fake.url}", flush=True)
    try:
        for line in sys.stdin:  # until the parent closes it
            word, _, value = line.strip().partition(" ")
            if word == "stall":
                delay_all(float(value))
            print("ok", flush=True)
    finally:
        fake.close()  # ends held requests too


if __name__ == "__main__":
    serve()
