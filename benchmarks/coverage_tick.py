"""3. Coverage tick cost at 10, 100 and 1,000 symbols.

    python benchmarks/coverage_tick.py [--sizes 10 100 1000] [--ticks 40]

A real CoverageActor over a fake exchange port with N markets: 90 % of them
covered by a (fresh) model, so ACTIVE; 10 % too young, so BLOCKED_HISTORY; none
trains, so the tick is the steady-state evaluation the bot does every 300 s.
One tick = `clock.advance(300)` until the CoverageTick is handled (evaluate every
symbol, publish CoverageChecked, send SymbolStates to a subscriber). The
universe refresh (markets + tickers + selection + evaluation) is timed too, by
asking `RefreshUniverse`. Target: coverage tick at 1,000 symbols < 20 ms.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import _common
import pykka

from actors.base import Runtime, TrainerDirectory, ask
from actors.clock import VirtualClock
from actors.coverage import CoverageActor
from actors.messages import ModelsUpdated, RefreshUniverse, SymbolStates
from config.settings import CoverageSettings, TrainingSettings, UniverseSettings
from exchange.types import Market, Ticker
from models.artifacts import LoadedModel, Manifest

DAY_MS = 86_400_000


class FakeExchange:
    """The part of the exchange port coverage uses, for N synthetic markets."""

    name = "fake"

    def __init__(self, count: int, now_ms: int) -> None:
        self.symbols = [f"S{i:04d}/USDT" for i in range(count)]
        self.markets = {
            s: Market(symbol=s, base=s.split("/")[0], quote="USDT", active=True)
            for s in self.symbols
        }
        self.tickers = {
            s: Ticker(symbol=s, last=1.0, quote_volume=1e6 + i) for i, s in enumerate(self.symbols)
        }
        young = set(self.symbols[::10])
        self.listed = {s: now_ms - (5 if s in young else 400) * DAY_MS for s in self.symbols}

    def load_markets(self) -> dict[str, Market]:
        return self.markets

    def fetch_tickers(self) -> dict[str, Ticker]:
        return self.tickers

    def history_start_ms(self, symbol: str) -> int | None:
        return self.listed[symbol]


class _Subscriber:
    def __init__(self) -> None:
        self.snapshots = 0

    def tell(self, message: Any) -> None:
        if isinstance(message, SymbolStates):
            self.snapshots += 1


def _no_trainer(symbol: str) -> pykka.ActorRef[Any]:
    raise AssertionError(f"{symbol}: nothing should train in this benchmark")


def model(symbol: str, trained_at_ms: int) -> LoadedModel:
    manifest = Manifest(
        format=1,
        version="v000001",
        symbols=[symbol],
        timeframe="1m",
        feature_names=[],
        window_start_ms=0,
        window_end_ms=0,
        trained_at_ms=trained_at_ms,
        rows=0,
        metrics={},
        params={},
        model_file="model.joblib",
        sha256="",
        library_versions={},
    )
    return LoadedModel(manifest=manifest, estimator=None)


def measure(count: int, ticks: int) -> tuple[float, float, float, int]:
    """(tick p50 ms, tick max ms, universe refresh + evaluation ms, states sent)."""
    clock = VirtualClock(start=_common.T0)
    now_ms = int(_common.T0 * 1000)
    exchange = FakeExchange(count, now_ms)
    subscriber, runtime = _Subscriber(), Runtime()
    ref = CoverageActor.start(
        clock=clock,
        exchange=exchange,  # type: ignore[arg-type]  # a partial port, enough for coverage
        trainers=TrainerDirectory(_no_trainer),
        store=_Subscriber(),
        coverage=CoverageSettings(),
        universe=UniverseSettings(top_n=count, refresh_s=10**9),
        training=TrainingSettings(),
        quote="USDT",
        subscribers={"trader": subscriber},
        runtime=runtime,
    )
    young = set(exchange.symbols[::10])
    models = {s: model(s, now_ms) for s in exchange.symbols if s not in young}
    ref.tell(ModelsUpdated(version="v000001", symbols=tuple(models), models=models))
    runtime.wait_quiet()
    samples = []
    for _ in range(ticks):
        start = time.perf_counter()
        clock.advance(300)
        samples.append(time.perf_counter() - start)
    start = time.perf_counter()
    ask(ref, RefreshUniverse())  # answered once the lookup is back
    refresh = time.perf_counter() - start
    ref.stop()
    p50, _ = _common.percentiles_ms(samples)
    return p50, max(samples) * 1e3, refresh * 1e3, subscriber.snapshots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--ticks", type=int, default=40)
    args = parser.parse_args()
    rows = []
    results: dict[str, dict[str, float]] = {}
    base = None
    for count in args.sizes:
        p50, worst, refresh, _ = measure(count, args.ticks)
        base = base or p50
        rows.append((count, p50, worst, p50 / base, refresh))
        results[str(count)] = {"p50_ms": p50, "max_ms": worst, "refresh_ms": refresh}
    print(f"coverage tick = advance(300) until handled; {args.ticks} ticks per size")
    print(
        _common.table(
            ["symbols", "tick p50 ms", "tick max ms", f"p50 vs {args.sizes[0]}", "refresh ms"],
            rows,
        )
    )
    _common.result("coverage_tick", sizes=results)


if __name__ == "__main__":
    main()
