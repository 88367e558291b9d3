"""tradeactors: builds the bot from settings, starts its actors, keeps them running.

    python supervisor.py [--settings FILE]     run the bot (paper + synthetic market by default)
    python supervisor.py shell [-c CMD]        the admin shell (docs/admin.md)
    python supervisor.py simulate --days N     the same actors on virtual time, with a report

The supervisor is the only module that knows every actor. It starts the model
store, the coverage actor and the trader (in that order), hands each the
addresses of the actors it talks to, and restarts a permanent actor that dies
(one-for-one, at most 3 times in 60 s; past that it stops the bot with a clear
log line and a non-zero exit). Trainers are temporary: never restarted, their
failure reaches the coverage actor as `TrainingFailed`. SIGINT/SIGTERM stop
every actor in order and exit 0. The admin server (actors/admin.py) starts after
the actors and stops before them.

State lives in `<data_dir>/tradeactors.db` (orders, fills, positions, symbol
states, training attempts, model versions) and, on the paper exchange, in
`<data_dir>/paper/state.json`. A database that fails its checks stops the bot
before anything trades (exit 3, one line naming the file and what to do).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import msgspec
import pykka
from threadpoolctl import threadpool_limits

from actors import simulation
from actors.admin import AdminServer, TokenError, load_or_create_token
from actors.admin_shell import DEFAULT_HISTORY, run_shell
from actors.base import Address, BaseActor, Topic, TrainerDirectory
from actors.clock import Clock, RealClock, VirtualClock
from actors.coverage import CoverageActor
from actors.messages import ActorDied, ActorRestarted, StopRequested
from actors.model_store import ModelStoreActor
from actors.policy.restarts import RestartBudget
from actors.settings import Settings, SettingsError, load_settings
from actors.sim_report import Summary
from actors.trader import TraderActor
from actors.trainer import TrainerActor
from exchange.paper import PaperExchange
from exchange.port import ExchangePort
from exchange.synthetic import SyntheticMarket, synthetic_specs
from exchange.types import ExchangeError
from models import artifacts
from models.pool import TrainingPool
from storage.candles import CandleCache
from storage.db import FILE_NAME, Database, ModelVersions, SqliteLedger, StorageError, SymbolStore
from storage.durable import write_atomically
from storage.ledger import Ledger

log = logging.getLogger("tradeactors.supervisor")

PERMANENT = ("model_store", "coverage", "trader")  # start order; stop order is reversed


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
        exchange: ExchangePort,
        pool: TrainingPool,
        ledger: Ledger | None = None,
        events: Topic | None = None,
        db: Database | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.exchange = exchange
        self.pool = pool
        data = Path(settings.data_dir)
        # the database: opened here unless given (raises StorageError if it fails its checks)
        self.db = db or Database.open(data / FILE_NAME)
        self.ledger = ledger or SqliteLedger(self.db)
        self.events = events or Topic()
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
        }
        return {
            "model_store": lambda: ModelStoreActor.start(
                models_dir=self.models_dir,
                subscribers={"coverage": a["coverage"], "trader": a["trader"]},
                versions=ModelVersions(self.db),
                **common,
            ),
            "coverage": lambda: CoverageActor.start(
                exchange=self.exchange,
                trainers=self.trainers,
                store=a["model_store"],
                coverage=s.coverage,
                universe=s.universe,
                training=s.training,
                quote=s.exchange.quote,
                subscribers={"trader": a["trader"]},
                symbol_store=SymbolStore(self.db),
                **common,
            ),
            "trader": lambda: TraderActor.start(
                exchange=self.exchange,
                ledger=self.ledger,
                trading=s.trading,
                timeframe=s.timeframe,
                heartbeat_s=s.heartbeat_s,
                health_s=s.health_s,
                quote=s.exchange.quote,
                store=a["model_store"],
                coverage=a["coverage"],
                **common,
            ),
        }

    def _start_trainer(self, symbol: str) -> pykka.ActorRef[Any]:
        def leave(actor: BaseActor) -> None:
            self.trainers.remove(symbol, actor.actor_ref)

        return TrainerActor.start(
            symbol=symbol,
            clock=self.clock,
            exchange=self.exchange,
            cache=self.cache,
            pool=self.pool,
            store=self.addresses["model_store"],
            coverage=self.addresses["coverage"],
            models_dir=self.models_dir,
            timeframe=self.settings.timeframe,
            training=self.settings.training,
            on_exit=leave,
            supervisor=self.mailbox,
            events=self.events,
        )

    # --- stopping -------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Coverage first (no new trainers), then trainers, trader, store; then the pool."""
        self._stop_actor("coverage", timeout)
        self.trainers.stop_all(timeout)
        self._stop_actor("trader", timeout)
        self._stop_actor("model_store", timeout)
        self.pool.shutdown(cancel_pending=True)
        self.exchange.close()
        self.db.close()

    def _stop_actor(self, name: str, timeout: float) -> None:
        ref = self.addresses[name].ref
        if ref is not None and ref.is_alive():
            with contextlib.suppress(pykka.ActorDeadError):
                ref.stop(timeout=timeout)
        self.addresses[name].bind(None)


class Supervisor:
    """Watches the permanent actors and restarts them one-for-one within a budget."""

    def __init__(
        self,
        system: System,
        budget: RestartBudget | None = None,
        admin: AdminServer | None = None,
    ) -> None:
        self.system = system
        self.budget = budget or RestartBudget(max_restarts=3, within_s=60.0)
        self.admin = admin
        self.exit_code = 0

    def handle(self, message: Any) -> bool:
        """Handle one message from the supervisor mailbox; False when the bot must stop."""
        if isinstance(message, StopRequested):
            log.info("Stopping (%s): coverage, trainers, trader, model store", message.reason)
            return False
        if not isinstance(message, ActorDied):
            log.warning("Supervisor: unexpected message %s", type(message).__name__)
            return True
        if message.name not in PERMANENT:
            log.info("%s stopped on an error (temporary actor, not restarted)", message.name)
            return True
        when = "while starting" if message.during_start else "while running"
        now = self.system.clock.now()
        if not self.budget.allow(message.name, now):
            log.error(
                "%s died %s (%s): more than %d restarts in %.0f s; stopping the bot",
                message.name,
                when,
                message.error,
                self.budget.max_restarts,
                self.budget.within_s,
            )
            self.exit_code = 1
            return False
        log.warning("%s died %s (%s); restarting it", message.name, when, message.error)
        self.system.start_actor(message.name)
        self.system.events.publish(ActorRestarted(at=now, name=message.name, error=message.error))
        return True

    def run(self) -> int:
        """Start everything, supervise until a stop is requested, stop in order; the exit code."""
        stop_signal: list[str] = []

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop_signal.append(signal.Signals(signum).name)

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        self.system.start()
        inbox = self.system.mailbox.queue
        try:
            if self.admin is not None:
                try:
                    self.admin.start()
                except OSError as exc:
                    log.error(
                        "%s; stopping the bot (change admin.port or admin.enabled)",
                        exc.strerror or exc,
                    )
                    self.exit_code = 1
                    return self.exit_code
            while True:
                if stop_signal:
                    inbox.put(StopRequested(reason=stop_signal.pop()))
                try:
                    message = inbox.get(timeout=0.25)
                except queue.Empty:
                    continue
                if not self.handle(message):
                    break
        finally:
            if self.admin is not None:
                self.admin.stop()
            self.system.stop()
        log.info(
            "Stopped%s.", " cleanly" if self.exit_code == 0 else " after an unrecoverable failure"
        )
        return self.exit_code


# --- building from settings ------------------------------------------------------------


def build_exchange(settings: Settings, clock: Clock) -> ExchangePort:
    if settings.exchange.kind == "ccxt":
        return build_ccxt_exchange(settings, clock, os.environ)
    if settings.exchange.kind != "paper":
        raise SettingsError(f"exchange.kind {settings.exchange.kind!r} is not available yet")
    anchor_ms = _paper_anchor(Path(settings.data_dir), clock)
    market = SyntheticMarket(anchor_ms=anchor_ms, seed=settings.exchange.seed)
    return PaperExchange(
        market,
        now_ms=lambda: int(clock.now() * 1000),
        quote=settings.exchange.quote,
        starting_balance=settings.exchange.starting_balance,
        fee_rate=settings.exchange.fee_rate,
        slippage_bps=settings.exchange.slippage_bps,
        # orders and balances survive a restart, so reconciliation has something to check
        state_path=Path(settings.data_dir) / "paper" / "state.json",
    )


def build_ccxt_exchange(
    settings: Settings, clock: Clock, environ: Mapping[str, str]
) -> ExchangePort:
    """A real exchange through ccxt; SettingsError (exit 2, before any actor runs) when
    the keys are missing or live mode is not confirmed."""
    # imported here: `import ccxt` takes ~0.9 s, which the paper default does not need
    from exchange.ccxt_exchange import (
        LIVE_CONFIRMATION,
        CcxtConfig,
        CcxtExchange,
        Credentials,
    )

    ex = settings.exchange
    if ex.mode == "live" and ex.live_confirm != LIVE_CONFIRMATION:
        raise SettingsError(
            f"exchange.mode live trades real money: set exchange.live_confirm to "
            f'"{LIVE_CONFIRMATION}" to confirm, or use mode sandbox or demo'
        )
    try:
        credentials = Credentials.from_env(environ, ex.mode)
        config = CcxtConfig(
            exchange_id=ex.id,
            mode=ex.mode,
            base_url=ex.base_url,
            quote=ex.quote,
            timeout_ms=ex.timeout_ms,
            recv_window_ms=ex.recv_window_ms,
        )
        return CcxtExchange(
            config,
            credentials,
            now_ms=lambda: int(clock.now() * 1000),
            sleep=time.sleep,
            monotonic=time.monotonic,
        )
    except ExchangeError as exc:
        raise SettingsError(f"exchange: {exc}") from None


class _Anchor(msgspec.Struct):
    anchor_ms: int


def _paper_anchor(data_dir: Path, clock: Clock) -> int:
    """The synthetic market's reference time, fixed at the first run so that ages keep growing
    across restarts (a young symbol does become eligible)."""
    path = data_dir / "paper" / "anchor.json"
    if path.exists():
        try:
            return msgspec.json.decode(path.read_bytes(), type=_Anchor).anchor_ms
        except (OSError, msgspec.DecodeError) as exc:
            raise ExchangeError(f"unreadable paper market anchor {path}: {exc}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    now_ms = int(clock.now() * 1000)
    anchor = now_ms - now_ms % 60_000
    write_atomically(path, msgspec.json.encode(_Anchor(anchor)))  # a kill cannot leave half
    return anchor


def build_admin_server(system: System, token: str, **options: Any) -> AdminServer:
    """The admin websocket wired to the system's actors (addresses), events and supervisor."""
    admin = system.settings.admin
    return AdminServer(
        actors=system.addresses,
        events=system.events,
        supervisor=system.mailbox,
        trainers=system.trainers.symbols,
        clock=system.clock,
        token=token,
        quote=system.settings.exchange.quote,
        host=options.pop("host", admin.host),
        port=options.pop("port", admin.port),
        **options,
    )


def configure_logging(level: str) -> None:
    formatter = logging.Formatter(
        "%(asctime)s %(levelname)-7s %(name)-24s %(message)s", "%Y-%m-%d %H:%M:%S"
    )
    formatter.converter = time.gmtime  # UTC, like the exchange
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pykka").setLevel(logging.WARNING)


def run(settings_path: str, clock: RealClock | None = None) -> int:
    """Run the bot until it is stopped; the exit code. `clock`: wall time unless given."""
    try:
        settings = load_settings(settings_path)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.logging.level)
    ex = settings.exchange
    log.info(
        "tradeactors starting: exchange %s (%s), data in %s",
        ex.kind,
        f"{ex.market} market" if ex.kind == "paper" else f"{ex.id} {ex.mode}",
        Path(settings.data_dir).resolve(),
    )
    # BLAS is capped process-wide here; OpenMP limits are per thread, so
    # LoadedModel.prob_up caps the trader's own thread: a predict left at both
    # cores fights the training worker and the tick p99 goes up tenfold.
    thread_cap = threadpool_limits(limits=1)
    clock = clock or RealClock()
    try:
        return _run_system(settings, clock)
    finally:
        clock.stop()
        thread_cap.restore_original_limits()


def _run_system(settings: Settings, clock: RealClock) -> int:
    try:
        db = Database.open(Path(settings.data_dir) / FILE_NAME)
    except StorageError as exc:
        log.error("%s", exc)
        return 3
    try:
        exchange = build_exchange(settings, clock)
    except SettingsError as exc:
        db.close()
        print(exc, file=sys.stderr)
        return 2
    except ExchangeError as exc:
        db.close()
        log.error("%s. Refusing to start; the file was not changed", exc)
        return 3
    try:
        admin_token = load_or_create_token(settings.data_dir) if settings.admin.enabled else None
    except (TokenError, OSError) as exc:
        db.close()
        exchange.close()
        print(f"admin token: {exc}", file=sys.stderr)
        return 2
    pool = TrainingPool(workers=settings.training.workers, kind="process")
    system = System(settings, clock, exchange, pool, db=db)
    admin = None if admin_token is None else build_admin_server(system, admin_token.value)
    return Supervisor(system, admin=admin).run()


# --- simulation: the same actors on a virtual clock (actors/simulation.py) ------------------


def simulate(
    settings: Settings,
    *,
    days: float,
    symbols: int | None = None,
    seed: int | None = None,
    pool_kind: Literal["thread", "process"] = "thread",
    workers: int | None = None,
    clock: VirtualClock | None = None,
    on_step: Callable[[float, float], None] | None = None,
) -> Summary:
    """Run the whole bot for `days` of virtual time on `symbols` synthetic symbols.

    Paper exchange over the synthetic market whatever `exchange.kind` says; model
    files and candles in a temporary folder (nothing on disk is reused or kept).
    """
    seed = settings.exchange.seed if seed is None else seed
    specs = synthetic_specs(symbols)
    workers = workers or os.cpu_count() or 1
    vclock = clock or VirtualClock(start=simulation.SIM_START)
    replace = msgspec.structs.replace
    with tempfile.TemporaryDirectory(prefix="tradeactors-sim-") as data_dir:
        settings = replace(
            settings,
            data_dir=data_dir,
            exchange=replace(settings.exchange, seed=seed),
            universe=replace(settings.universe, top_n=max(settings.universe.top_n, len(specs))),
        )
        market = SyntheticMarket(anchor_ms=int(vclock.now() * 1000), seed=seed, specs=specs)
        paper = settings.exchange
        exchange = PaperExchange(
            market,
            now_ms=lambda: int(vclock.now() * 1000),
            quote=paper.quote,
            starting_balance=paper.starting_balance,
            fee_rate=paper.fee_rate,
            slippage_bps=paper.slippage_bps,
        )
        pool = simulation.DeterministicPool(workers=workers, kind=pool_kind)
        monitor = simulation.InvariantMonitor(
            coverage_interval_s=settings.coverage.interval_s,
            min_history_days=settings.coverage.min_history_days,
            listed_at={s.symbol: market.listed_ms(s.symbol) / 1000 for s in specs},
        )
        system = System(settings, vclock, exchange, pool)
        result = simulation.run(
            system,
            vclock,
            pool,
            days * 86_400,
            monitor=monitor,
            sample_s=settings.heartbeat_s,
            supervisor=Supervisor(system).handle,
            on_step=on_step,
        )
    return simulation.summarize(
        result,
        settings,
        seed=seed,
        pool=pool_kind,
        workers=workers,
        training_note=simulation.TRAINING_NOTE,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python supervisor.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--settings", default="settings.yaml", help="settings file (default: %(default)s)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    simulation.add_parser(commands)
    shell = commands.add_parser(
        "shell",
        help="the admin shell: steer the running bot",
        description="The admin shell of a running bot (docs/admin.md). Exit codes: 0 ok, "
        "1 error reply, 2 bad command or settings, 3 cannot connect or token refused.",
    )
    # SUPPRESS: `--settings F shell` and `shell --settings F` both work
    shell.add_argument("--settings", default=argparse.SUPPRESS, help="the bot's settings file")
    shell.add_argument("-c", dest="shell_command", metavar="CMD", help='one command, e.g. "status"')
    shell.add_argument("--json", action="store_true", help="print the raw JSON replies")
    shell.add_argument("--url", help="ws://HOST:PORT (default: admin.host/port of the settings)")
    shell.add_argument(
        "--history", type=Path, help="history file (default: ~/.tradeactors_shell_history)"
    )
    args = parser.parse_args(argv)
    if args.command == "shell":
        history = args.history or DEFAULT_HISTORY
        return run_shell(args.settings, args.shell_command, args.json, args.url, history)
    if args.command == "simulate":
        return simulation.command(args, simulate)
    return run(args.settings)


if __name__ == "__main__":
    sys.exit(main())
