"""Runs the live bot: settings, database, exchange, admin token, then the supervisor's loop.

A start-up failure is one line and an exit code: 2 for settings, 3 for state on disk.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from threadpoolctl import threadpool_limits

from actors.clock import RealClock
from admin.token import TokenError, load_or_create_token
from app.builders import build_admin_server, build_exchange
from app.logs import configure_logging
from app.supervision import Supervisor
from app.system import System
from config.settings import Settings, SettingsError, load_settings
from exchange.types import ExchangeError
from models.pool import TrainingPool
from storage.db import FILE_NAME, Database, StorageError

log = logging.getLogger("tradeactors.supervisor")


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
        for client in exchange.distinct():
            client.close()
        print(f"admin token: {exc}", file=sys.stderr)
        return 2
    pool = TrainingPool(workers=settings.training.workers, kind="process")
    system = System(settings, clock, exchange, pool, db=db)
    admin = None if admin_token is None else build_admin_server(system, admin_token.value)
    return Supervisor(system, admin=admin).run()
