"""Runs the live bot: settings, checks, database, exchange, admin token, then the supervisor's loop.

A start-up failure is one line and an exit code: 2 for settings (and whatever
`app.preflight` finds before anything starts), 3 for state on disk.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from threadpoolctl import threadpool_limits

from actors.clock import RealClock
from admin.token import TokenError, load_or_create_token
from app import __version__, preflight
from app.builders import build_admin_server, build_exchange, build_training_pool
from app.logs import add_log_file, configure_logging
from app.preflight import PreflightError
from app.supervision import Supervisor
from app.system import System
from config.settings import Settings, SettingsError, load_settings
from exchange.types import ExchangeError
from models.strategy import StrategyError, load_strategy
from notify.notes import note, stopped
from notify.notifier import Notifier, NotifyError
from storage.db import FILE_NAME, Database, StorageError

log = logging.getLogger("tradeactors.supervisor")


def run(
    settings_path: str | Path | Settings,
    clock: RealClock | None = None,
    log_file: str | None = None,
) -> int:
    """Run the bot until it is stopped; the exit code. `clock`: wall time unless given.

    `settings_path`: a settings file, or `Settings` built by the caller (used as given,
    without `load_settings`' rules across fields). `log_file`: instead of the settings'
    `logging.file` ("" for none)."""
    clock = clock or RealClock()
    try:
        if isinstance(settings_path, Settings):
            settings = settings_path
        else:
            settings = load_settings(settings_path)
        log_path = log_file_path(settings, log_file)
        preflight.check_settings(settings, log_path)
        notifier = Notifier.from_settings(settings.notify, settings.exchange.quote, os.environ)
        _check_universe(settings, clock)
    except (SettingsError, NotifyError) as exc:
        clock.stop()
        print(exc, file=sys.stderr)
        return 2
    except PreflightError as exc:
        clock.stop()
        print(exc, file=sys.stderr)
        return exc.code
    try:  # a broken plug-in stops the bot now, not at its first training or trade
        load_strategy(settings.training.strategy)
    except StrategyError as exc:
        clock.stop()
        print(f"{settings_path}: training.strategy: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.logging.level)
    logs = settings.logging
    to_file = None
    if log_path is not None:
        to_file = add_log_file(log_path, logs.file_level, logs.max_bytes, logs.backups)
    ex = settings.exchange
    log.info(
        "tradeactors starting: exchange %s (%s), data in %s, log file %s (version %s)",
        ex.kind,
        (f"{ex.market} market" + (f" of {ex.id}" if ex.market == "live" else ""))
        if ex.kind == "paper"
        else f"{ex.id} {ex.mode}",
        Path(settings.data_dir).resolve(),
        "none" if log_path is None else log_path.resolve(),
        __version__,
    )
    # BLAS is capped process-wide here; OpenMP limits are per thread, so
    # LoadedModel.prob_up caps the trader's own thread: a predict left at both
    # cores fights the training worker and the tick p99 goes up tenfold.
    thread_cap = threadpool_limits(limits=1)
    try:
        return _run_system(settings, clock, notifier)
    finally:
        clock.stop()
        thread_cap.restore_original_limits()
        if to_file is not None:
            logging.getLogger().removeHandler(to_file)
            to_file.close()


def log_file_path(settings: Settings, override: str | None = None) -> Path | None:
    """`--log-file` (relative to the working folder; "" for none), else `logging.file`."""
    if override is not None:
        return Path(override) if override else None
    return settings.logging.path(settings.data_dir)


def _check_universe(settings: Settings, clock: RealClock) -> None:
    """A static universe against the exchange's markets, on an exchange that keeps no state
    (the real one is built once the data folder is locked); PreflightError names the unknown."""
    if settings.universe.mode != "static":
        return
    roles = build_exchange(settings, clock, keep_state=False)
    probe = roles.downloads
    try:
        listed = probe.load_markets()
    except ExchangeError as exc:
        # not the user's mistake: the coverage actor retries, and names what is missing then
        print(
            f"universe.symbols not checked: {probe.name} markets unavailable ({exc})",
            file=sys.stderr,
        )
        return
    finally:
        for client in roles.distinct():
            client.close()
    preflight.check_universe(settings.universe, listed, probe.name)


def _run_system(settings: Settings, clock: RealClock, notifier: Notifier) -> int:
    try:
        db = Database.open(Path(settings.data_dir) / FILE_NAME)
    except StorageError as exc:
        log.error("%s", exc)
        return 3
    except OSError as exc:  # a permission changed since the preflight checks
        log.error("%s: %s. Refusing to start", exc.filename or settings.data_dir, exc.strerror)
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
        for client in exchange.distinct():
            client.close()
        print(f"admin token: {exc}", file=sys.stderr)
        return 2
    try:
        pool = build_training_pool(settings.training)
    except SettingsError as exc:
        db.close()
        for client in exchange.distinct():
            client.close()
        print(exc, file=sys.stderr)
        return 2
    system = System(settings, clock, exchange, pool, db=db)
    admin = None if admin_token is None else build_admin_server(system, admin_token.value)
    supervisor = Supervisor(system, admin=admin)
    if not notifier:
        return supervisor.run()
    system.events.subscribe("notifier", notifier)
    notifier.start()
    ex = settings.exchange
    where = f"{ex.market} market" if ex.kind == "paper" else f"{ex.id} {ex.mode}"
    notifier.notify(note("start", "tradeactors started", f"exchange {ex.kind} ({where})"))
    try:
        return supervisor.run()
    finally:
        notifier.notify(
            stopped(supervisor.stop_reason, supervisor.exit_code, supervisor.restart_limit)
        )
        notifier.close(timeout=10.0)
