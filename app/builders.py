"""Builds the parts a System is made of from settings: the exchange, the training pool and the
admin server.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from actors.clock import Clock
from admin.server import AdminServer
from app.system import System
from config.settings import ExchangeSettings, Settings, SettingsError, TrainingSettings
from core.durable import write_atomically
from exchange.live import LivePaperExchange
from exchange.paper import PaperExchange, PaperMarket
from exchange.port import ExchangePort, ExchangeRoles
from exchange.synthetic import SyntheticMarket
from exchange.types import ExchangeError, TransientExchangeError
from models.pool import TrainingBackend, TrainingPool

log = logging.getLogger("tradeactors.supervisor")


def build_exchange(settings: Settings, clock: Clock, keep_state: bool = True) -> ExchangeRoles:
    """The exchange client of each role (market data, orders, downloads).

    `keep_state` False: a paper exchange that writes nothing (to look at its markets
    before the data folder is locked); a ccxt exchange keeps no state either way."""
    if settings.exchange.kind == "ccxt":
        return build_ccxt_exchange(settings, clock, os.environ)
    if settings.exchange.kind != "paper":
        raise SettingsError(f"exchange.kind {settings.exchange.kind!r} is not available yet")
    if settings.exchange.market == "live":
        # one public client behind the paper fills (its requests are few: one per candle)
        return ExchangeRoles.single(build_live_paper_exchange(settings, clock))
    data_dir = Path(settings.data_dir)
    if not keep_state:
        market = SyntheticMarket(anchor_ms=int(clock.now() * 1000), seed=settings.exchange.seed)
        return ExchangeRoles.single(build_paper_exchange(market, clock, settings.exchange))
    anchor_ms = _paper_anchor(data_dir, clock)
    market = SyntheticMarket(anchor_ms=anchor_ms, seed=settings.exchange.seed)
    paper = build_paper_exchange(
        market,
        clock,
        settings.exchange,
        # orders and balances survive a restart, so reconciliation has something to check
        state_path=data_dir / "paper" / "state.json",
    )
    return ExchangeRoles.single(paper)  # in-process: nothing to wait behind


def build_paper_exchange(
    market: PaperMarket,
    clock: Clock,
    settings: ExchangeSettings | None = None,
    state_path: Path | None = None,
) -> PaperExchange:
    """The paper exchange over `market` on `clock`'s time, with the quote, balance, fee and
    slippage of `settings` (default: ExchangeSettings()). The bot, the simulation, the tests
    and the benchmarks all build it here. `state_path`: keep orders and balances across
    restarts (None: in memory only)."""
    paper = settings or ExchangeSettings()
    return PaperExchange(
        market,
        now_ms=lambda: int(clock.now() * 1000),
        quote=paper.quote,
        starting_balance=paper.starting_balance,
        fee_rate=paper.fee_rate,
        slippage_bps=paper.slippage_bps,
        state_path=state_path,
    )


def build_ccxt_exchange(
    settings: Settings, clock: Clock, environ: Mapping[str, str]
) -> ExchangeRoles:
    """A real exchange through ccxt, one client per role sharing one `ServerGate` (the
    server's pause and the weight budget); SettingsError (exit 2, before any actor runs)
    when the keys are missing or live mode is not confirmed.

    Every call waits at most `exchange.deadline_s` (RetryPolicy.deadline_s, and no single
    wait longer); the market-data client sends up to `max_in_flight` requests at once and
    reloads markets hourly (or for a symbol it does not know), not on the candle path."""
    # imported here: `import ccxt` takes ~0.9 s, which the paper default does not need
    from exchange.ccxt_client import CcxtConfig
    from exchange.ccxt_exchange import CcxtExchange
    from exchange.credentials import LIVE_CONFIRMATION, Credentials
    from exchange.gate import ServerGate
    from exchange.retry import RetryPolicy

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
            retry=RetryPolicy(deadline_s=ex.deadline_s, max_wait_s=ex.deadline_s),
        )
        gate = ServerGate(time.monotonic)

        def client(role: str, **changes: Any) -> CcxtExchange:
            return CcxtExchange(
                msgspec.structs.replace(config, **changes),
                credentials,
                now_ms=lambda: int(clock.now() * 1000),
                sleep=time.sleep,
                monotonic=time.monotonic,
                gate=gate,
                role=role,
            )

        orders = client("orders", connections=2)  # a health check never delays an order
        # ccxt's rateLimit (ms per unit of request cost) stands for the exchange's own limit
        gate.limit = ex.weight_share * 60_000 / orders.rate_limit_ms
        return ExchangeRoles(
            orders=orders,
            market_data=client(
                "market data", connections=ex.max_in_flight, markets_ttl_s=3600.0, quiet=True
            ),
            downloads=client("downloads"),
        )
    except ExchangeError as exc:
        raise SettingsError(f"exchange: {exc}") from None


def public_data_mode(settings: Settings) -> Literal["sandbox", "demo", "live"]:
    """Whose prices the public market data is: a ccxt bot's own venue (its testnet in
    sandbox mode), else the production exchange."""
    return settings.exchange.mode if settings.exchange.kind == "ccxt" else "live"


def public_data_name(settings: Settings) -> str:
    """The exchange name public data is cached under (as `CcxtExchange.name` spells it)."""
    mode, exchange_id = public_data_mode(settings), settings.exchange.id
    return exchange_id if mode == "live" else f"{exchange_id}-{mode}"


def build_public_exchange(
    settings: Settings, now_ms: Callable[[], int], max_retries: int = 4
) -> ExchangePort:
    """The exchange's public endpoints through ccxt, without keys (private calls would be
    refused): markets, tickers and candles. SettingsError for an unknown exchange id."""
    from exchange.ccxt_client import CcxtConfig
    from exchange.ccxt_exchange import CcxtExchange
    from exchange.credentials import Credentials
    from exchange.retry import RetryPolicy

    ex = settings.exchange
    config = CcxtConfig(
        exchange_id=ex.id,
        mode=public_data_mode(settings),
        base_url=ex.base_url,
        quote=ex.quote,
        timeout_ms=ex.timeout_ms,
        retry=RetryPolicy(max_retries=max_retries),
    )
    try:
        return CcxtExchange(
            config,
            Credentials("", ""),
            now_ms=now_ms,
            sleep=time.sleep,
            monotonic=time.monotonic,
        )
    except ExchangeError as exc:
        raise SettingsError(f"exchange: {exc}") from None


def build_live_paper_exchange(settings: Settings, clock: Clock) -> ExchangePort:
    """Paper fills on the public prices of `exchange.id` (docs/exchanges.md)."""
    ex = settings.exchange
    exchange = LivePaperExchange(
        build_public_exchange(settings, lambda: int(clock.now() * 1000)),
        timeframe=settings.timeframe,
        now_ms=lambda: int(clock.now() * 1000),
        quote=ex.quote,
        starting_balance=ex.starting_balance,
        fee_rate=ex.fee_rate,
        slippage_bps=ex.slippage_bps,
        state_path=Path(settings.data_dir) / "paper" / "state.json",
    )
    try:  # a corrupt state file stops the start (exit 3), as on the synthetic market
        exchange.paper()
    except TransientExchangeError as exc:
        log.warning("%s does not answer at start (%s); paper orders wait until it does", ex.id, exc)
    return exchange


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
