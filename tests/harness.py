"""Test harness: probe mailboxes, a small system on a virtual clock, settle-then-assert.

Probes are `Recorder`s: anything with `tell`, keeping what arrives. Nothing here
sleeps: `settle()` waits for mailboxes to drain and fits to finish (work that is
really happening), never for time to pass; time passes only by `clock.advance`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pykka

from actors.base import Runtime, Topic
from actors.clock import VirtualClock
from config.settings import Settings

T = TypeVar("T")

# 2026-11-26 00:00 UTC: a fixed start, so the synthetic market is the same every run.
T0 = 1_795_651_200.0

# Trading settings for tests that need orders, whatever the model says. P(up) is never
# below ANY_SIGNAL, so an entry threshold of ANY_SIGNAL enters on every signal while
# keeping entry > exit (the settings refuse anything else).
ANY_SIGNAL = 1e-9
# enter on one candle, exit on the next (held one candle): every other candle places an order
EVERY_CANDLE = {
    "entry_threshold": ANY_SIGNAL,
    "exit_threshold": 0.0,
    "min_hold_bars": 0,
    "cooldown_bars": 0,
    "max_hold_bars": 1,
    "max_open_positions": 10,
}
# enter once and hold (never a sell signal, no time limit)
HOLD = {"entry_threshold": ANY_SIGNAL, "exit_threshold": 0.0, "max_hold_bars": 0}


class Recorder:
    """A probe mailbox: records every message told to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Any] = []

    def tell(self, message: Any) -> None:
        with self._lock:
            self.items.append(message)

    def of(self, kind: type[T]) -> list[T]:
        with self._lock:
            return [m for m in self.items if isinstance(m, kind)]

    def clear(self) -> None:
        with self._lock:
            self.items.clear()


class Stalling:
    """An exchange that stalls on chosen calls: everything goes to `inner`, but after
    `hold(name)` each call of `name` (whose arguments pass `only`, if given) sets
    `entered[name]` and waits until `release(name)` (a real wait, on an event the test
    sets; at most 30 s, then it fails). `asked` keeps every call's name and arguments."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._gates: dict[str, tuple[threading.Event, Callable[..., bool] | None]] = {}
        self.entered: dict[str, threading.Event] = {}
        self.asked: list[tuple[str, tuple[Any, ...]]] = []

    def hold(self, name: str, only: Callable[..., bool] | None = None) -> None:
        with self._lock:
            self._gates[name] = (threading.Event(), only)
            self.entered[name] = threading.Event()

    def release(self, name: str) -> None:
        with self._lock:
            gate, _ = self._gates.pop(name)
        gate.set()

    def calls(self, name: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [args for called, args in self.asked if called == name]

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.asked.append((name, args))
                gate, only = self._gates.get(name, (None, None))
                entered = self.entered.get(name)
            if gate is not None and entered is not None and (only is None or only(*args)):
                entered.set()
                assert gate.wait(30), f"{name}: stalled and never released"
            return attr(*args, **kwargs)

        return call


def settle(runtime: Runtime, timeout: float = 60.0) -> None:
    """Wait until the actors of `runtime` (one System's, or one test's) are quiet."""
    runtime.wait_quiet(timeout)


# A promotion gate that lets every model through: the tests built on the harness check the
# machinery (lifecycle, orders, restarts), and on 4 days of synthetic candles most symbols
# have no edge to find (only ETH and SOL trend). The gate itself is tested on its own
# (test_models_evaluation, test_promotion_gate).
PROMOTE_ANY = {"min_net_return_pct": -100.0, "min_auc": 0.0}


def settings_for(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    """Default settings with a small training window (fast fits), every model promoted
    (`PROMOTE_ANY`) and data under tmp_path."""
    raw: dict[str, Any] = {
        "data_dir": str(tmp_path / "var"),
        "training": {"window_days": 4, "max_iter": 30},
        "promotion": PROMOTE_ANY,
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            raw[name] = {**raw.get(name, {}), **values}
        else:
            raw[name] = values
    return msgspec.convert(raw, type=Settings)


def new_clock(start: float = T0) -> VirtualClock:
    return VirtualClock(start=start)


def until(condition: Callable[[], object], what: str, timeout_s: float = 60.0) -> None:
    """Wait for other threads' or processes' real work (a process starting, a websocket round
    trip), never for virtual time to pass; fails naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def stop_all_actors() -> None:
    pykka.ActorRegistry.stop_all(block=True, timeout=10)


def events_recorder(topic: Topic) -> Recorder:
    recorder = Recorder()
    topic.subscribe("test-recorder", recorder)
    return recorder


class Bot:
    """A whole bot on a virtual clock: paper exchange, in-process training pool, event recorder.

    Its database is `tmp_path/var/tradeactors.db`. `at`: the clock's start (a bot
    made again on the same tmp_path later is a restart); `paper_state`: the paper
    exchange keeps its state in `var/paper/state.json` (survives a restart);
    `pool`: another TrainingPool (e.g. worker processes); `roles(paper)`: the System's
    `ExchangeRoles` (default: the paper exchange in every role).
    """

    def __init__(
        self,
        tmp_path: Path,
        symbols: list[str] | None = None,
        *,
        at: float = T0,
        paper_state: bool = False,
        pool: Any = None,
        roles: Any = None,
        **sections: Any,
    ) -> None:
        from app.builders import build_paper_exchange
        from app.system import System
        from exchange.synthetic import SyntheticMarket
        from models.pool import TrainingPool

        if symbols is not None:
            sections["universe"] = {
                "mode": "static",
                "symbols": symbols,
                **sections.get("universe", {}),
            }
        self.settings = settings_for(tmp_path, **sections)
        self.clock = new_clock(at)
        state_path = Path(self.settings.data_dir) / "paper" / "state.json" if paper_state else None
        self.exchange = build_paper_exchange(
            SyntheticMarket(anchor_ms=int(T0 * 1000)), self.clock, state_path=state_path
        )
        self.system = System(
            self.settings,
            self.clock,
            roles(self.exchange) if roles is not None else self.exchange,
            pool or TrainingPool(workers=1, kind="thread"),
        )
        self.events = events_recorder(self.system.events)

    def start(self, wait: bool = True) -> Bot:
        self.system.start()
        if wait:
            self.settle()
        return self

    def settle(self, timeout: float = 60.0) -> None:
        self.system.runtime.wait_quiet(timeout)

    def run(self, seconds: float, step: float = 60.0) -> None:
        """Advance virtual time in steps, letting every actor (and fit) finish between steps."""
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            self.clock.advance(min(step, end - self.clock.now()))
            self.settle()

    def ask(self, actor: str, message: Any) -> Any:
        return self.system.addresses[actor].ask(message)

    def stop(self) -> None:
        self.system.stop()


def traded_params(**overrides: Any) -> Any:
    """TrainParams for test models that stand for traded ones: cost-free next-2-candle labels
    (a random walk seldom beats a round trip's cost in 2 candles; its momentum is learnable)
    and a gate every such model passes."""
    from models.training import TrainParams

    defaults: dict[str, Any] = {
        "horizon_bars": 2,
        "fee_rate": 0.0,
        "slippage_bps": 0.0,
        "label_margin": 0.0,
        "max_iter": 10,
        "min_rows": 500,
        "min_net_return_pct": -100.0,
        "min_auc": 0.0,
    }
    return TrainParams(**(defaults | overrides))


def start_trader(
    *,
    clock: Any,
    exchange: Any,
    ledger: Any,
    trading: Any,
    store: Any,
    coverage: Any,
    runtime: Runtime,
    events: Topic | None = None,
    heartbeat_s: float = 600,
    health_s: float = 300,
    max_in_flight: int = 1,
    deadline_s: float | None = None,
    market_exchange: Any = None,
    trader_class: Any = None,
    **trader_options: Any,
) -> pykka.ActorRef[Any]:
    """A TraderActor on 1m candles and the MarketDataActor it asks for them, both on `runtime`
    (stopped by the autouse fixture at the end of a test; a benchmark stops them). Options:
    `market_exchange`, the market-data role's client (default: `exchange`, as with paper);
    `trader_class`, a TraderActor subclass built with `trader_options` besides."""
    from actors.market_data import MarketDataActor
    from actors.trader import TraderActor
    from models.features import LOOKBACK_BARS

    market_data = MarketDataActor.start(
        clock=clock,
        exchange=market_exchange or exchange,
        timeframe="1m",
        bars=LOOKBACK_BARS + 5,
        max_in_flight=max_in_flight,
        deadline_s=deadline_s,
        events=events,
        runtime=runtime,
    )
    return (trader_class or TraderActor).start(
        clock=clock,
        exchange=exchange,
        ledger=ledger,
        trading=trading,
        timeframe="1m",
        heartbeat_s=heartbeat_s,
        health_s=health_s,
        quote="USDT",
        store=store,
        coverage=coverage,
        market_data=market_data,
        events=events,
        runtime=runtime,
        **trader_options,
    )


def make_tradable(trader: Any, models: dict[str, Any]) -> None:
    """Tell the trader that each symbol of `models` is ACTIVE with that model (what the store
    and coverage would)."""
    from actors.messages import ModelsUpdated, SymbolStates
    from policy.lifecycle import SymbolRecord, SymbolState

    trader.tell(ModelsUpdated(version="v", symbols=(), models=dict(models)))
    records = tuple(SymbolRecord(symbol=s, state=SymbolState.ACTIVE) for s in sorted(models))
    trader.tell(SymbolStates(records=records))


def stage_model(models_dir: Path, symbol: str, trained_at: float = T0, seed: int = 1) -> Path:
    """A real model for `symbol`, trained on a small seeded random walk, staged for publishing."""
    from models import artifacts
    from models.synthetic import random_walk_candles
    from models.training import TrainJob, run_training

    staging = artifacts.new_staging_dir(models_dir)
    candles = random_walk_candles(3000, seed=seed, momentum=0.3)
    job = TrainJob(
        symbol=symbol,
        timeframe="1m",
        candles=candles,
        staging_dir=str(staging),
        params=traded_params(),
        trained_at_ms=int(trained_at * 1000),
    )
    run_training(job)
    return staging


def published_model(models_dir: Path, symbol: str, seed: int = 1) -> Any:
    """Stage, publish and load a model: a LoadedModel as the store would hand it out."""
    from models import artifacts

    manifest = artifacts.publish(models_dir, stage_model(models_dir, symbol, seed=seed))
    return artifacts.load_version(models_dir / manifest.version)
