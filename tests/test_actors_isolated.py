"""Each actor alone: probe mailboxes stand for its collaborators, time is a VirtualClock.

Send it messages, advance time, settle, and assert on what reached the probes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.base import BaseActor, Runtime, Topic, TrainerDirectory, ask
from actors.coverage import CoverageActor
from actors.messages import (
    CommandResult,
    CoverageChecked,
    GetModels,
    ModelPublished,
    ModelsReloaded,
    ModelsUpdated,
    OrderPlaced,
    Pause,
    PublishFailed,
    PublishModel,
    RefreshUniverse,
    Resume,
    SignalProduced,
    Subscribe,
    SymbolStates,
    TrainingFailed,
    UnblockSymbol,
)
from actors.model_store import ModelStoreActor
from app.builders import build_paper_exchange
from config.settings import Settings, TradingSettings, UniverseSettings
from exchange.paper import PaperExchange
from exchange.synthetic import SyntheticMarket
from exchange.types import TransientExchangeError
from policy.lifecycle import SymbolRecord, SymbolState
from storage.ledger import MemoryLedger, OrderState
from tests.harness import (
    HOLD,
    T0,
    Recorder,
    new_clock,
    published_model,
    settle,
    stage_model,
    start_trader,
)


class StandInTrainer(BaseActor):
    """Stands for a TrainerActor: exists until told to stop, records nothing else."""

    def __init__(self, symbol: str, runtime: Runtime) -> None:
        super().__init__(f"trainer:{symbol}", new_clock(), runtime=runtime)


@pytest.fixture
def exchange_and_clock() -> tuple[PaperExchange, Any]:
    clock = new_clock()
    exchange = build_paper_exchange(SyntheticMarket(anchor_ms=int(T0 * 1000)), clock)
    return exchange, clock


# --- coverage -------------------------------------------------------------------------


class CoverageRig:
    def __init__(self, exchange: PaperExchange, clock: Any, symbols: list[str]) -> None:
        self.started: list[str] = []
        self.runtime = Runtime()
        self.trainers = TrainerDirectory(self._start_trainer)
        self.store, self.trader, self.events = Recorder(), Recorder(), Recorder()
        topic = Topic({"probe": self.events})
        settings = Settings()
        self.ref = CoverageActor.start(
            clock=clock,
            exchange=exchange,
            trainers=self.trainers,
            store=self.store,
            coverage=settings.coverage,
            universe=UniverseSettings(mode="static", symbols=tuple(symbols)),
            training=settings.training,
            quote="USDT",
            subscribers={"trader": self.trader},
            events=topic,
            runtime=self.runtime,
        )
        self.clock = clock

    def _start_trainer(self, symbol: str) -> pykka.ActorRef[Any]:
        self.started.append(symbol)
        return StandInTrainer.start(symbol, self.runtime)

    def finish_trainer(self, symbol: str) -> None:
        """What a real trainer does at the end: leave the directory, then stop."""
        ref = self.trainers._refs[symbol]  # the stand-in's own ref
        self.trainers.remove(symbol, ref)
        ref.stop()

    def states(self) -> dict[str, SymbolState]:
        latest = self.trader.of(SymbolStates)[-1]
        return {r.symbol: r.state for r in latest.records}


@pytest.fixture
def rig(exchange_and_clock: tuple[PaperExchange, Any]) -> Iterator[CoverageRig]:
    exchange, clock = exchange_and_clock
    yield CoverageRig(exchange, clock, ["BTC/USDT", "PEPE/USDT", "USDC/USDT"])


def test_coverage_subscribes_and_waits_for_the_store_before_deciding(rig: CoverageRig) -> None:
    settle(rig.runtime)
    subscribe = rig.store.of(Subscribe)
    assert [s.name for s in subscribe] == ["coverage"]
    assert rig.started == [] and rig.trader.of(SymbolStates) == []
    rig.ref.tell(ModelsUpdated(version=None, symbols=(), models={}))
    settle(rig.runtime)
    assert rig.started == ["BTC/USDT", "USDC/USDT"]
    assert rig.states() == {
        "BTC/USDT": SymbolState.TRAINING,
        "PEPE/USDT": SymbolState.BLOCKED_HISTORY,
        "USDC/USDT": SymbolState.TRAINING,
    }
    assert [c.trigger for c in rig.events.of(CoverageChecked)] == ["startup"]


def test_a_universe_refresh_before_the_store_answered_says_it_was_skipped(
    rig: CoverageRig,
) -> None:
    result = rig.ref.ask(RefreshUniverse())
    assert not result.ok and result.detail.startswith("skipped: the model store has not answered")
    rig.ref.tell(ModelsUpdated(version=None, symbols=(), models={}))
    settle(rig.runtime)  # the startup refresh
    result = ask(rig.ref, RefreshUniverse())  # answered once the lookup is back
    assert result == CommandResult(ok=True, detail="universe refreshed and evaluated: 3 symbols")


def test_coverage_with_models_on_disk_trains_nothing(rig: CoverageRig, tmp_path: Path) -> None:
    model = published_model(tmp_path, "BTC/USDT")
    rig.ref.tell(ModelsUpdated(version=model.version, symbols=(), models={"BTC/USDT": model}))
    settle(rig.runtime)
    assert "BTC/USDT" not in rig.started
    assert rig.states()["BTC/USDT"] is SymbolState.ACTIVE


def test_failure_backs_off_and_a_published_model_activates(
    rig: CoverageRig, tmp_path: Path
) -> None:
    rig.ref.tell(ModelsUpdated(version=None, symbols=(), models={}))
    settle(rig.runtime)
    rig.finish_trainer("BTC/USDT")
    rig.ref.tell(TrainingFailed(symbol="BTC/USDT", error="exchange timed out"))
    settle(rig.runtime)
    assert rig.states()["BTC/USDT"] is SymbolState.RETRY_WAIT
    rig.clock.advance(300)  # one tick: still backing off (600 s)
    settle(rig.runtime)
    assert rig.started.count("BTC/USDT") == 1
    rig.clock.advance(300)
    settle(rig.runtime)
    assert rig.started.count("BTC/USDT") == 2
    model = published_model(tmp_path, "BTC/USDT")
    rig.ref.tell(
        ModelsUpdated(version=model.version, symbols=("BTC/USDT",), models={"BTC/USDT": model})
    )
    settle(rig.runtime)
    assert rig.states()["BTC/USDT"] is SymbolState.ACTIVE


def test_admin_unblock_of_a_symbol_that_is_not_blocked_is_refused(rig: CoverageRig) -> None:
    rig.ref.tell(ModelsUpdated(version=None, symbols=(), models={}))
    settle(rig.runtime)
    reply = rig.ref.ask(UnblockSymbol(symbol="BTC/USDT"))
    assert reply == CommandResult(ok=False, detail="BTC/USDT is TRAINING, not blocked")
    assert rig.ref.ask(UnblockSymbol(symbol="NOPE/USDT")).detail == "unknown symbol NOPE/USDT"


# --- model store ---------------------------------------------------------------------


@pytest.fixture
def store_rig(
    tmp_path: Path,
) -> Iterator[tuple[pykka.ActorRef[Any], Recorder, Recorder, Any, Path, Runtime]]:
    clock, runtime = new_clock(), Runtime()
    subscriber, events = Recorder(), Recorder()
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    ref = ModelStoreActor.start(
        clock=clock,
        models_dir=models_dir,
        subscribers={"coverage": subscriber},
        events=Topic({"probe": events}),
        runtime=runtime,
    )
    yield ref, subscriber, events, clock, models_dir, runtime


def test_store_publishes_loads_and_tells_subscribers(store_rig: Any) -> None:
    ref, subscriber, events, clock, models_dir, runtime = store_rig
    reply_to = Recorder()
    ref.tell(
        PublishModel(
            symbol="ETH/USDT",
            staging_dir=str(stage_model(models_dir, "ETH/USDT")),
            reply_to=reply_to,
        )
    )
    settle(runtime)
    assert reply_to.of(ModelPublished) == [ModelPublished(symbol="ETH/USDT", version="v000001")]
    update = subscriber.of(ModelsUpdated)[-1]
    assert update.symbols == ("ETH/USDT",) and set(update.models) == {"ETH/USDT"}
    assert [r.trigger for r in events.of(ModelsReloaded)] == ["startup", "published"]
    clock.advance(3 * 86_400)  # days pass: no reload on a timer
    settle(runtime)
    assert [r.trigger for r in events.of(ModelsReloaded)] == ["startup", "published"]


def test_store_refuses_a_corrupt_publish_and_keeps_its_models(
    store_rig: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ref, _, _, _, models_dir, runtime = store_rig
    good = stage_model(models_dir, "ETH/USDT")
    ref.tell(PublishModel(symbol="ETH/USDT", staging_dir=str(good), reply_to=Recorder()))
    bad = stage_model(models_dir, "ETH/USDT", seed=2)
    model_file = bad / "model.joblib"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    reply_to = Recorder()
    ref.tell(PublishModel(symbol="ETH/USDT", staging_dir=str(bad), reply_to=reply_to))
    settle(runtime)
    failed = reply_to.of(PublishFailed)
    assert len(failed) == 1 and "checksum" in failed[0].error
    current = ref.ask(GetModels())
    assert current.models["ETH/USDT"].version == "v000001"
    assert "models in use are unchanged" in caplog.text


def test_store_at_start_skips_a_broken_version_and_serves_the_previous(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models_dir = tmp_path / "models"
    published_model(models_dir, "BTC/USDT")
    published_model(models_dir, "BTC/USDT", seed=3)
    (models_dir / "v000002" / "manifest.json").unlink()
    ref = ModelStoreActor.start(clock=new_clock(), models_dir=models_dir)
    current = ref.ask(GetModels())
    assert current.models["BTC/USDT"].version == "v000001"
    assert "Model refused" in caplog.text and "v000002" in caplog.text


# --- trader ----------------------------------------------------------------------------


class TraderRig:
    def __init__(
        self, exchange: PaperExchange, clock: Any, ledger: MemoryLedger, **trading: Any
    ) -> None:
        self.store, self.coverage, self.events = Recorder(), Recorder(), Recorder()
        self.runtime = Runtime()
        self.ref = start_trader(
            clock=clock,
            exchange=exchange,
            ledger=ledger,
            trading=TradingSettings(**trading),
            store=self.store,
            coverage=self.coverage,
            events=Topic({"probe": self.events}),
            runtime=self.runtime,
        )


def _states(**states: SymbolState) -> SymbolStates:
    return SymbolStates(
        records=tuple(
            SymbolRecord(symbol=s.replace("_", "/"), state=st) for s, st in states.items()
        )
    )


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Any]:
    return {s: published_model(tmp_path, s, seed=i) for i, s in enumerate(["BTC/USDT", "ETH/USDT"])}


def test_trader_signals_and_orders_only_for_active_symbols(
    exchange_and_clock: tuple[PaperExchange, Any],
    models: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    exchange, clock = exchange_and_clock
    ledger = MemoryLedger()
    rig = TraderRig(exchange, clock, ledger, **HOLD)
    settle(rig.runtime)
    assert {s.name for s in rig.store.of(Subscribe)} == {"trader"}
    rig.ref.tell(ModelsUpdated(version="v000002", symbols=(), models=models))
    rig.ref.tell(_states(BTC_USDT=SymbolState.ACTIVE, ETH_USDT=SymbolState.BLOCKED_MANUAL))
    clock.advance(600)
    settle(rig.runtime)
    assert {e.symbol for e in rig.events.of(SignalProduced)} == {"BTC/USDT"}
    orders = rig.events.of(OrderPlaced)
    assert [o.symbol for o in orders] == ["BTC/USDT"]  # one entry, then held (exit at P <= 0)
    row = ledger.get(orders[0].client_order_id)
    assert row is not None and row.state is OrderState.FILLED
    assert exchange.fetch_order("BTC/USDT", orders[0].client_order_id) is not None
    assert "Bot heartbeat: 1 active symbol, 1 blocked, 1 open position" in caplog.text


def test_paused_trader_makes_no_entries(
    exchange_and_clock: tuple[PaperExchange, Any], models: dict[str, Any]
) -> None:
    exchange, clock = exchange_and_clock
    rig = TraderRig(exchange, clock, MemoryLedger(), **HOLD)
    assert rig.ref.ask(Pause()).ok
    rig.ref.tell(ModelsUpdated(version="v000002", symbols=(), models=models))
    rig.ref.tell(_states(BTC_USDT=SymbolState.ACTIVE))
    clock.advance(300)
    settle(rig.runtime)
    assert rig.events.of(SignalProduced) and not rig.events.of(OrderPlaced)
    rig.ref.ask(Resume())
    clock.advance(60)
    settle(rig.runtime)
    assert [o.symbol for o in rig.events.of(OrderPlaced)] == ["BTC/USDT"]


def test_a_decision_already_in_the_ledger_is_not_sent_again(
    exchange_and_clock: tuple[PaperExchange, Any], models: dict[str, Any]
) -> None:
    exchange, clock = exchange_and_clock
    ledger = MemoryLedger()
    first = TraderRig(exchange, clock, ledger, **HOLD)
    first.ref.tell(ModelsUpdated(version="v000002", symbols=(), models=models))
    first.ref.tell(_states(BTC_USDT=SymbolState.ACTIVE))
    settle(first.runtime)
    assert len(first.events.of(OrderPlaced)) == 1
    first.ref.stop()
    # a restarted trader sees the same candle and decides the same entry
    again = TraderRig(exchange, clock, ledger, **HOLD)
    again.ref.tell(ModelsUpdated(version="v000002", symbols=(), models=models))
    again.ref.tell(_states(BTC_USDT=SymbolState.ACTIVE))
    settle(again.runtime)
    assert again.events.of(OrderPlaced) == []
    assert len(exchange.fetch_open_orders()) + len(ledger.orders(OrderState.FILLED)) == 1


class ExchangeDownAtFirst:
    """The paper exchange behind an outage: load_markets fails the first `failures` times."""

    def __init__(self, inner: PaperExchange, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def load_markets(self) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise TransientExchangeError("paper: connection refused")
        return self.inner.load_markets()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_exchange_down_at_start_retires_nothing_and_retries_at_the_next_check(
    exchange_and_clock: tuple[PaperExchange, Any], tmp_path: Path
) -> None:
    exchange, clock = exchange_and_clock
    rig = CoverageRig(ExchangeDownAtFirst(exchange, failures=1), clock, ["BTC/USDT"])  # type: ignore[arg-type]
    model = published_model(tmp_path, "BTC/USDT")
    rig.ref.tell(ModelsUpdated(version=model.version, symbols=(), models={"BTC/USDT": model}))
    settle(rig.runtime)
    assert rig.events.of(CoverageChecked) == []  # no universe: nothing decided, nothing retired
    retired = [
        r.symbol
        for snapshot in rig.trader.of(SymbolStates)
        for r in snapshot.records
        if r.state is SymbolState.RETIRED
    ]
    assert retired == []
    clock.advance(300)  # the next coverage check retries the refresh, not an hour later
    settle(rig.runtime)
    assert rig.states() == {"BTC/USDT": SymbolState.ACTIVE}
    assert [c.trigger for c in rig.events.of(CoverageChecked)] == ["tick"]
