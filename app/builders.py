"""Builds the parts a System is made of from settings: the exchange, the training pool and the
admin server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from actors.clock import Clock
from admin.server import AdminServer
from app.system import System
from config.settings import Settings, SettingsError, TrainingSettings
from core.durable import write_atomically
from exchange.paper import PaperExchange
from exchange.port import ExchangePort
from exchange.synthetic import SyntheticMarket
from exchange.types import ExchangeError
from models.pool import TrainingBackend, TrainingPool


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


def build_training_pool(training: TrainingSettings, workers: int | None = None) -> TrainingBackend:
    """Worker processes on this machine, or a Dask cluster (docs/distributed.md).

    `workers` overrides training.workers (the local pool's or local cluster's size).

    Never blocks: a Dask pool connects in the background; an unreachable scheduler
    is logged and its fits fail (and are retried) like any other failure. Raises
    SettingsError when the dask extra is not installed.
    """
    if training.backend == "processes":
        return TrainingPool(workers=workers or training.workers, kind="process")
    try:
        from models.dask_pool import DaskTrainingPool
    except ImportError as exc:
        raise SettingsError(
            f"training.backend dask needs the dask extra (pip install -e '.[dask]'): {exc}"
        ) from None
    d = training.dask
    return DaskTrainingPool(
        d.scheduler,
        workers=workers or training.workers,
        threads_per_fit=d.threads_per_fit,
        max_in_flight=d.max_in_flight,
        fit_deadline_s=d.fit_deadline_s,
        connect_timeout_s=d.connect_timeout_s,
    )


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
