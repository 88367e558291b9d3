"""A running bot's parts wired together: the same System for live runs, tests and simulation.

The only module that knows every actor: it builds them from settings, hands each
the addresses of the actors it talks to, and starts and stops them in order.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka

from actors.base import Address, BaseActor, Runtime, Topic, TrainerDirectory
from actors.clock import Clock
from actors.coverage import CoverageActor
from actors.market_data import MarketDataActor
from actors.model_store import ModelStoreActor
from actors.trader import TraderActor
from actors.trainer import TrainerActor
from config.settings import Settings
from exchange.port import ExchangePort, ExchangeRoles
from models import artifacts
from models.features import LOOKBACK_BARS
from models.pool import TrainingBackend
from models.strategy import load_strategy
from models.training import TrainParams
from storage.candles import CandleCache
from storage.db import (
    FILE_NAME,
    Database,
    ModelVersions,
    RejectedModels,
    SqliteLedger,
    SymbolStore,
)
from storage.ledger import Ledger

log = logging.getLogger("tradeactors.supervisor")

# start order; the trader, which asks market data at every candle close, starts after it
PERMANENT = ("model_store", "coverage", "market_data", "trader")


class _QueueMailbox:
    """The supervisor's mailbox: actors tell it, its main loop takes from it."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()

    def tell(self, message: Any) -> None:
        self.queue.put(message)


class System:
    """Every part of a running bot, wired together; the same for live runs, tests and simulation."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        exchange: ExchangePort | ExchangeRoles,
        pool: TrainingBackend,
        ledger: Ledger | None = None,
        events: Topic | None = None,
        db: Database | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        # one client per role (market data, orders, downloads); one exchange serves them all
        single = ExchangeRoles.single
        self.roles = exchange if isinstance(exchange, ExchangeRoles) else single(exchange)
        self.exchange = self.roles.orders
        self.pool = pool
        self.train_params = TrainParams.from_settings(settings)
        data = Path(settings.data_dir)
        # the database: opened here unless given (raises StorageError if it fails its checks)
        self.db = db or Database.open(data / FILE_NAME)
        self.ledger = ledger or SqliteLedger(self.db)
        self.events = events or Topic()
        # This system's message counts and background work: its wait_quiet waits for its
        # own actors only. Given when a pool must share it (the simulation's).
        self.runtime = runtime or Runtime()
        self.mailbox = _QueueMailbox()
        self.models_dir = data / "models"
        self.cache = CandleCache(data / "candles")
        self.addresses = {name: Address(name) for name in PERMANENT}
        self.trainers = TrainerDirectory(self._start_trainer)

    # --- starting ---------------------------------------------------------------------

    def start(self) -> None:
        # no trainer runs yet: a staging folder now is what a killed process left behind
        removed = artifacts.discard_all_staging(self.models_dir)
        if removed:
            log.info("Removed %d unfinished model staging folders left by a previous run", removed)
        for name in PERMANENT:
            self.start_actor(name)

    def start_actor(self, name: str) -> pykka.ActorRef[Any]:
        ref = self._factories()[name]()
        self.addresses[name].bind(ref)
        return ref

    def _factories(self) -> dict[str, Callable[[], pykka.ActorRef[Any]]]:
        s, a = self.settings, self.addresses
        common: dict[str, Any] = {
            "clock": self.clock,
            "supervisor": self.mailbox,
            "events": self.events,
            "runtime": self.runtime,
        }
        return {
            "model_store": lambda: ModelStoreActor.start(
                models_dir=self.models_dir,
                subscribers={"coverage": a["coverage"], "trader": a["trader"]},
                versions=ModelVersions(self.db),
                rejections=RejectedModels(self.db),
                **common,
            ),
            "coverage": lambda: CoverageActor.start(
                exchange=self.roles.downloads,
                trainers=self.trainers,
                store=a["model_store"],
                coverage=s.coverage,
                universe=s.universe,
                training=s.training,
                quote=s.exchange.quote,
                subscribers={"trader": a["trader"]},
                symbol_store=SymbolStore(self.db),
                promotion=s.promotion,
                **common,
            ),
            "market_data": lambda: MarketDataActor.start(
                exchange=self.roles.market_data,
                timeframe=s.timeframe,
                # the configured strategy's window (a plug-in may look further back than the
                # built-in features), plus a few candles of slack
                bars=max(LOOKBACK_BARS, load_strategy(s.training.strategy).lookback_bars) + 5,
                # the paper exchange computes candles in-process: threads would buy nothing
                max_in_flight=1
                if self.roles.market_data.name == "paper"
                else s.exchange.max_in_flight,
                deadline_s=s.exchange.deadline_s,
                **common,
            ),
            "trader": lambda: TraderActor.start(
                exchange=self.roles.orders,
                ledger=self.ledger,
                trading=s.trading,
                timeframe=s.timeframe,
                heartbeat_s=s.heartbeat_s,
                health_s=s.health_s,
                quote=s.exchange.quote,
                store=a["model_store"],
                coverage=a["coverage"],
                market_data=a["market_data"],
                **common,
            ),
        }

    def _start_trainer(self, symbol: str) -> pykka.ActorRef[Any]:
        def leave(actor: BaseActor) -> None:
            self.trainers.remove(symbol, actor.actor_ref)

        return TrainerActor.start(
            symbol=symbol,
            clock=self.clock,
            exchange=self.roles.downloads,
            cache=self.cache,
            pool=self.pool,
            store=self.addresses["model_store"],
            coverage=self.addresses["coverage"],
            models_dir=self.models_dir,
            timeframe=self.settings.timeframe,
            training=self.settings.training,
            params=self.train_params,
            on_exit=leave,
            supervisor=self.mailbox,
            events=self.events,
            runtime=self.runtime,
        )

    # --- stopping -------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Coverage first (no new trainers), then trainers, trader, market data, store; then the
        pool, ending the fits still running (a download in a trainer leaves off at its next
        page: `Runtime.stopping`)."""
        self.runtime.stopping.set()
        self._stop_actor("coverage", timeout)
        self.trainers.stop_all(timeout)
        self._stop_actor("trader", timeout)
        self._stop_actor("market_data", timeout)
        self._stop_actor("model_store", timeout)
        self.pool.shutdown(cancel_pending=True)
        for client in self.roles.distinct():
            client.close()
        self.db.close()

    def _stop_actor(self, name: str, timeout: float) -> None:
        ref = self.addresses[name].ref
        if ref is not None and ref.is_alive():
            with contextlib.suppress(pykka.ActorDeadError):
                ref.stop(timeout=timeout)
        self.addresses[name].bind(None)
