"""Candle close -> the last symbol's decision, at 20, 200 and 500 symbols, against the loopback
fake Binance adding 50 ms to every request.

    python benchmarks/decision_latency.py [--sizes 20 200 500] [--candles 15] [--speed 12] \
        [--max-iter 100]

The real path: a MarketDataActor with the ccxt market-data client (built by
`app.builders.build_ccxt_exchange` from settings: deadlines, the shared weight budget,
`exchange.max_in_flight` connections) fetching each close's candle of every symbol,
and a TraderActor deciding on its `CandlesClosed` (features, the model's P(up), the
risk decision; entries are off, so no order is sent). Every symbol has a real model of
its own (copies of one trained model of `--max-iter` boosting iterations: the
settings' default, 100, unless told). The fake runs in a process of its own
(benchmarks/_fake_venue.py) on a fast clock shared with the bot: a 1-minute candle
every 60/speed s of wall time. Latency is wall time from the close to the last
symbol's `SignalProduced`, the trade tick's candle_delay_s (0.5 clock seconds: 42 ms
of wall time at x12) included; "candles in" is when the `CandlesClosed` reached the
trader, "deciding" from then to the last decision.

The first candle after the start is shown apart: every window is fetched whole (66
candles) and every connection opened. "one at a time" is the path before issue 12
(one request after another), at 20 symbols. Weight is what the bot's ServerGate
counted per candle, as Binance weight (ccxt cost x 5): on 1-minute candles, per
minute, against Binance's spot limit of 6,000 a minute (the bot keeps itself under
half of it).
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
import numpy as np
import pykka
from _fake_venue import FakeVenue

from actors.base import Runtime, Topic
from actors.clock import RealClock
from actors.messages import CandlesClosed, SignalProduced
from actors.trader import TraderActor
from app.builders import build_ccxt_exchange
from config.settings import Settings
from exchange.gate import WEIGHT_PER_UNIT
from exchange.synthetic import synthetic_specs
from storage.ledger import MemoryLedger
from tests.fake_binance import API_KEY, API_SECRET
from tests.harness import make_tradable, start_trader

ANCHOR_MS = int(_common.T0 * 1000)
BINANCE_LIMIT = 6000  # request weight a minute, spot
CANDLE_DELAY_S = 0.5  # clock seconds from a close to its trade tick: part of the latency
KEYS = {"TRADEACTORS_API_KEY": API_KEY, "TRADEACTORS_API_SECRET": API_SECRET}


class _Sink:
    def tell(self, message: Any) -> None:
        pass


class Decisions:
    """The trader's SignalProduced events, stamped with wall time as they are published, and
    when each CandlesClosed reached the trader."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_candle: dict[int, list[float]] = {}
        self.candles_in: dict[int, float] = {}  # close ms -> wall time the candles arrived

    def arrived(self, close_ms: int) -> None:
        now = time.time()
        with self.lock:
            self.candles_in.setdefault(close_ms, now)

    def tell(self, message: Any) -> None:
        if isinstance(message, SignalProduced):
            now = time.time()
            with self.lock:
                self.by_candle.setdefault(message.candle_ms, []).append(now)


class TimedTrader(TraderActor):
    """The trader, noting when each candle's data arrives (the benchmark's probe)."""

    def __init__(self, *, decisions: Decisions, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decisions = decisions

    def receive(self, message: Any) -> Any:
        if isinstance(message, CandlesClosed):
            self.decisions.arrived(message.close_ms)
        return super().receive(message)


def run(
    size: int, in_flight: int, candles: int, delay_ms: float, speed: float, model: Any
) -> dict[str, Any]:
    models = dict(
        zip(
            [spec.symbol for spec in synthetic_specs(size)],
            _common.model_copies(model, size),
            strict=True,
        )
    )
    wall_start = time.time()
    candle_wall = 60 / speed
    with FakeVenue(size, delay_ms, speed, wall_start, ANCHOR_MS) as venue:
        clock = RealClock(speed=speed, start=ANCHOR_MS / 1000, wall_start=wall_start)
        settings = msgspec.convert(
            {
                "exchange": {"kind": "ccxt", "base_url": venue.url, "max_in_flight": in_flight},
                # the fake's candles are final at once; half a (clock) second still keeps the
                # request after the close whatever the two processes' clocks read
                "trading": {"entry_threshold": 1.0, "candle_delay_s": CANDLE_DELAY_S},
            },
            Settings,
        )
        roles = build_ccxt_exchange(settings, clock, KEYS)
        gate = roles.market_data.gate  # type: ignore[attr-defined]
        # the weight budget counts per minute of the exchange's clock, which runs x speed
        # here: one candle a minute, as live (on wall time it would see `speed` candles)
        gate.monotonic = clock.now
        decisions, runtime = Decisions(), Runtime()
        trader = start_trader(
            trader_class=TimedTrader,
            decisions=decisions,
            clock=clock,
            exchange=roles.orders,
            market_exchange=roles.market_data,
            max_in_flight=in_flight,
            deadline_s=settings.exchange.deadline_s,
            ledger=MemoryLedger(),
            trading=settings.trading,
            heartbeat_s=10**6,
            health_s=10**6,
            store=_Sink(),
            coverage=_Sink(),
            events=Topic({"probe": decisions}),
            runtime=runtime,
        )
        try:
            make_tradable(trader, models)  # decided at once: the backfill
            # the first close after the start, in wall time: spend measured from just before it
            now_clock = clock.now()
            first_close = (now_clock // 60 + 1) * 60
            first_close_wall = wall_start + (first_close - ANCHOR_MS / 1000) / speed
            time.sleep(max(0.0, first_close_wall - time.time() - 0.05))
            spent_before = gate.total
            time.sleep(candles * candle_wall)  # to just before the close after the last one
            spent = gate.total - spent_before  # the requests of `candles` closes
        finally:
            pykka.ActorRegistry.stop_all()  # the trader and its market-data actor
            clock.stop()
            for client in roles.distinct():
                client.close()
    with decisions.lock:
        by_candle = dict(decisions.by_candle)
        candles_in = dict(decisions.candles_in)
    latencies, fetches, deciding, counts, first = [], [], [], [], None
    for candle_ms, stamps in sorted(by_candle.items()):
        close_s = candle_ms / 1000 + 60
        close_wall = wall_start + (close_s - ANCHOR_MS / 1000) / speed
        latency = max(stamps) - close_wall
        if close_s < first_close:  # closed before the start: the backfill
            first = max(stamps) - wall_start
            continue
        latencies.append(latency)
        arrived = candles_in.get(int(close_s * 1000), float("nan"))
        fetches.append(arrived - close_wall)
        deciding.append(max(stamps) - arrived)
        counts.append(len(stamps))
    steady = latencies[:candles]
    p50, p99 = np.percentile(np.asarray(steady) * 1e3, [50, 99]) if steady else (np.nan,) * 2
    weight_unit = WEIGHT_PER_UNIT["binance"]
    return {
        "size": size,
        "in_flight": in_flight,
        "candles": len(steady),
        "decided": f"{min(counts[:candles], default=0)}/{size}",
        "candles_in_p50_ms": median_ms(fetches[:candles]),
        "deciding_p50_ms": median_ms(deciding[:candles]),
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "max_ms": float(max(steady) * 1e3) if steady else float("nan"),
        "first_ms": float(first * 1e3) if first is not None else float("nan"),
        "weight_per_min": spent * weight_unit / max(1, len(steady)),
    }


def median_ms(seconds: list[float]) -> float:
    return float(np.nanmedian(np.asarray(seconds) * 1e3)) if seconds else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 200, 500])
    parser.add_argument("--candles", type=int, default=15, help="measured closes per size")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="added to every request")
    parser.add_argument("--speed", type=float, default=12.0, help="clock speed (x real time)")
    parser.add_argument("--in-flight", type=int, default=Settings().exchange.max_in_flight)
    parser.add_argument(
        "--max-iter", type=int, default=Settings().training.max_iter, help="the models' trees"
    )
    args = parser.parse_args()
    cap = _common.thread_cap()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        model = _common.trained_model(Path(tmp), args.max_iter)
        runs = [run(20, 1, min(args.candles, 5), args.delay_ms, args.speed, model)]
        runs += [
            run(size, args.in_flight, args.candles, args.delay_ms, args.speed, model)
            for size in args.sizes
        ]
    cap.restore_original_limits()
    rows = [
        (
            f"{r['size']} symbols" + (", one at a time (before)" if r["in_flight"] == 1 else ""),
            r["in_flight"],
            r["candles"],
            r["decided"],
            r["candles_in_p50_ms"],
            r["deciding_p50_ms"],
            r["p50_ms"],
            r["p99_ms"],
            r["max_ms"],
            r["first_ms"],
            r["weight_per_min"],
        )
        for r in runs
    ]
    print(
        f"candle close -> last symbol's decision; fake Binance +{args.delay_ms:g} ms a request, "
        f"clock x{args.speed:g}; models of {args.max_iter} trees; load average {load:.1f} at "
        "start (the machine is shared with other agents' work: absolute times vary)"
    )
    print(
        _common.table(
            [
                "symbols",
                "in flight",
                "closes",
                "decided",
                "candles in p50 ms",
                "deciding p50 ms",
                "p50 ms",
                "p99 ms",
                "max ms",
                "first candle ms",
                "weight/min",
            ],
            rows,
        )
    )
    biggest = runs[-1]
    print(
        f"request weight at {biggest['size']} symbols: {biggest['weight_per_min']:,.0f} a minute "
        f"of Binance's {BINANCE_LIMIT:,} ({BINANCE_LIMIT / max(1, biggest['weight_per_min']):.1f}x "
        "headroom; the bot's own budget is half the limit)"
    )
    _common.result(
        "decision_latency",
        runs=runs,
        p99_ms=biggest["p99_ms"],
        weight_per_min=biggest["weight_per_min"],
    )
    print(f"decision latency p99 at {biggest['size']} symbols: {biggest['p99_ms']:.0f} ms")


if __name__ == "__main__":
    main()
