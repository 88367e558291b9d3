"""Settings: `settings.yaml` decoded into frozen Structs that refuse unknown fields.

Every field has a default, so an empty file runs the embedded paper default.
`load_settings(path)` raises `SettingsError` whose message is one line naming
the file, the field path and the problem, e.g.
`settings.yaml: Expected int, got str - at $.coverage.interval_s`.

Secrets never live here: API keys and the admin token come from the
environment (see docs/).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import msgspec.yaml

from core.text import one_line
from core.timeframes import timeframe_s

Positive = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
Seconds = Annotated[int, msgspec.Meta(gt=0)]  # whole seconds
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ExchangeSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    kind: Literal["paper", "ccxt"] = "paper"
    # paper: where prices come from. "synthetic" = the embedded deterministic market;
    # "live" = the public prices of exchange `id` (production, no keys), fills on paper.
    market: Literal["synthetic", "live"] = "synthetic"
    seed: int = 7
    quote: str = "USDT"
    starting_balance: Positive = 10_000.0
    fee_rate: Fraction = 0.001  # 0.1 % per fill, Binance spot's base rate
    slippage_bps: NonNegative = 5.0
    # --- kind: ccxt (see docs/exchanges.md). Keys ONLY from the environment:
    # TRADEACTORS_API_KEY / TRADEACTORS_API_SECRET, never from this file.
    id: str = "binance"  # any ccxt exchange id; binance is the one tested in depth
    # sandbox: Binance spot testnet; demo: Binance demo trading; live: real money, and only
    # with live_confirm set to "I understand this trades real money"
    mode: Literal["sandbox", "demo", "live"] = "sandbox"
    base_url: str | None = None  # REST base override, e.g. http://127.0.0.1:9000 (gateways, tests)
    live_confirm: str = ""
    timeout_ms: Annotated[int, msgspec.Meta(ge=100)] = 10_000  # per HTTP request
    # a signed request older than this on arrival is refused (Binance: at most 60000)
    recv_window_ms: Annotated[int, msgspec.Meta(ge=1000, le=60_000)] = 5_000
    # --- waiting on the exchange (docs/exchanges.md) ---
    # The longest any actor waits on one exchange call, retries, Retry-After and bans
    # included: a call that would wait longer fails at once saying when to try again
    # (the next candle does). Well under a candle, so a slow exchange never stalls one.
    deadline_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 5.0
    # candle requests in flight at once at each close (the market-data client)
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=256)] = 128
    # share of the exchange's request weight limit the bot may use (0.5: 2x headroom)
    weight_share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5


class UniverseSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # auto: the top_n markets of the quote currency by 24 h volume, refreshed every refresh_s.
    # static: exactly `symbols`.
    mode: Literal["auto", "static"] = "auto"
    refresh_s: Seconds = 3600
    top_n: PositiveInt = 20
    symbols: tuple[str, ...] = ()
    # fnmatch patterns, e.g. "??*UP/USDT" (leveraged tokens: BTCUP, but not JUP)
    blacklist: tuple[str, ...] = ("??*UP/USDT", "*DOWN/USDT", "*BULL/USDT", "*BEAR/USDT")

    def __post_init__(self) -> None:
        # exchanges list symbols in upper case: "btc/usdt" would otherwise never match
        symbols = tuple(dict.fromkeys(s.strip().upper() for s in self.symbols))
        malformed = [s for s in symbols if not _is_pair(s)]
        if malformed:
            raise ValueError(
                f"universe.symbols: {', '.join(malformed)} is not BASE/QUOTE (e.g. BTC/USDT)"
            )
        if self.mode == "static" and not symbols:
            raise ValueError(
                "universe.mode static needs universe.symbols, e.g. [BTC/USDT, ETH/USDT]; "
                "it is empty (use mode auto for the top_n by volume)"
            )
        msgspec.structs.force_setattr(self, "symbols", symbols)


def _is_pair(symbol: str) -> bool:
    base, slash, quote = symbol.partition("/")
    return bool(slash and base and quote) and "/" not in quote


class CoverageSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    interval_s: Seconds = 300
    # 14 days of 1-minute candles (20,160 rows) is the least history on which a
    # walk-forward validation still has three folds of several thousand rows each
    # and every weekday appears twice; a younger market is mostly listing-pump noise.
    min_history_days: Positive = 14
    max_model_age_s: Seconds = 7 * 86_400  # retrain in the background after a week


class DaskSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Training on a Dask cluster (training.backend: dask; docs/distributed.md)."""

    # "": a local cluster on 127.0.0.1 with training.workers worker processes, one thread
    # each; otherwise the scheduler of an existing cluster, e.g. tcp://10.0.0.5:8786
    scheduler: str = ""
    threads_per_fit: PositiveInt = 1  # OpenMP/BLAS threads of one fit on its worker
    max_in_flight: PositiveInt = 4  # fits handed to the scheduler at once; the rest wait here
    fit_deadline_s: Positive = 3600.0  # from hand-over to result; then the fit is abandoned
    connect_timeout_s: Positive = 10.0

    def __post_init__(self) -> None:
        if self.scheduler and "://" not in self.scheduler:
            raise ValueError(
                f"training.dask.scheduler {self.scheduler!r} needs a protocol, "
                "e.g. tcp://host:8786 (empty: a local cluster on 127.0.0.1)"
            )


class TrainingSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # One worker on this 2-core machine keeps a core free for the trader.
    workers: PositiveInt = 1
    # processes: a local worker-process pool; dask: a Dask cluster (training.dask)
    backend: Literal["processes", "dask"] = "processes"
    dask: DaskSettings = DaskSettings()
    window_days: Positive = 90
    max_attempts: PositiveInt = 4
    retry_base_s: Seconds = 600  # 10 min, 20 min, 40 min ... between failed attempts
    retry_max_s: Seconds = 6 * 3600
    # Label: 1 when close[t + horizon_bars] / close[t] - 1 beats the round trip's cost
    # (2 x (exchange.fee_rate + exchange.slippage_bps), 0.3 % by default) plus label_margin.
    # Chosen with benchmarks/choose_defaults.py on the synthetic market of seed 101 (not
    # the seed-7 market `simulate` trades, never the real candles that check them): of
    # horizons 5-60 candles and margins 0 / 0.2 %, traded by 132 rule sets each, 60 candles
    # and 0.2 % (label: +0.5 % in an hour on 1m candles) with the thresholds below made the
    # best mean walk-forward net return among rule sets trading >= 0.5 orders a day.
    horizon_bars: PositiveInt = 60
    label_margin: NonNegative = 0.002
    max_iter: PositiveInt = 100
    # The features and the estimator: a `module:function` returning a models.strategy.Strategy
    # (docs/strategies.md). Imported by the training workers and by the trader.
    strategy: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] = (
        "models.strategy:hist_gradient_boosting"
    )


class TradingSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    stake_quote: Positive = 100.0  # quote currency per entry
    max_open_positions: PositiveInt = 3
    stop_loss_pct: Annotated[float, msgspec.Meta(gt=0, lt=100)] = 2.0
    # P(up) is the model's probability that the next horizon_bars beat the round trip's cost.
    # Enter at or above entry_threshold, exit at or below exit_threshold: the gap between them
    # (hysteresis, entry > exit) keeps a signal hovering near one threshold from trading.
    # Chosen with the horizon (see training): entry 0.8 / exit 0.35, a minimum hold of one
    # horizon, no cooldown (a cooldown of one horizon on top cost 0.2 % a fold) and no
    # maximum hold: the least-bad of 1,320 rule sets on seed 101, not an edge. Checked on
    # data that did not choose them (benchmarks/realdata_gate.py, docs/strategies.md): the
    # gate promoted 2 of 5 real series, and both lost on their held-out 40 %.
    entry_threshold: Fraction = 0.8
    exit_threshold: Fraction = 0.35
    min_hold_bars: NonNegativeInt = 60  # no signal exit before this many candles (stop loss acts)
    cooldown_bars: NonNegativeInt = 0  # no entry this many candles after the symbol's last exit
    max_hold_bars: NonNegativeInt = 0  # exit after this many candles whatever the signal; 0: never
    # A closed candle is final this many seconds after its close on real exchanges.
    candle_delay_s: NonNegative = 2.0

    def __post_init__(self) -> None:
        if self.entry_threshold <= self.exit_threshold:
            raise ValueError(
                f"trading.entry_threshold {self.entry_threshold:g} must be above "
                f"trading.exit_threshold {self.exit_threshold:g} (hysteresis: a signal between "
                "them neither enters nor exits)"
            )


Level = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class LoggingSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    level: Level = "INFO"  # the console (stderr)
    # the log file: relative to data_dir; "" for none. `--log-file PATH` overrides it.
    file: str = "logs/tradeactors.log"
    file_level: Level = "INFO"
    # size-based rotation: tradeactors.log, .log.1 ... .log.<backups>, oldest dropped
    max_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 10 * 1024 * 1024
    backups: Annotated[int, msgspec.Meta(ge=0)] = 5

    def path(self, data_dir: str | Path) -> Path | None:
        """The log file, or None when there is none."""
        return Path(data_dir) / self.file if self.file else None


class AdminSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The admin websocket (docs/admin.md). Its token comes from the environment or the data
    folder, never from here."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8765  # 0: any free port
    # Listening beyond this machine must be asked for explicitly.
    allow_remote: bool = False

    def __post_init__(self) -> None:
        if not self.allow_remote and not is_loopback(self.host):
            raise ValueError(
                f"admin.host {self.host} is not a loopback address; "
                "set admin.allow_remote: true to accept connections from other machines"
            )


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1); False for anything else."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: may resolve anywhere


NotifyEvent = Literal["fill", "blocked", "restart", "mismatch", "start", "stop"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = ("fill", "blocked", "restart", "mismatch", "start", "stop")


class NotifyTarget(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One place to send notifications to: an apprise URL (docs/operations.md)."""

    # a URL with no secret in it, e.g. json://127.0.0.1:8080 ...
    url: str = ""
    # ... or the environment variable that holds it: tokens (tgram://TOKEN/CHAT) stay out
    url_env: str = ""
    # fill: an order filled; blocked: a symbol reached BLOCKED_FAILED or stopped being ACTIVE;
    # restart: an actor was restarted, or the bot stopped on the restart limit;
    # mismatch: reconciliation found the ledger and the exchange apart; start, stop: the bot
    events: tuple[NotifyEvent, ...] = NOTIFY_EVENTS

    def __post_init__(self) -> None:
        if bool(self.url) == bool(self.url_env):
            raise ValueError("a notify target needs exactly one of url and url_env")
        if not self.events:
            raise ValueError("a notify target needs at least one event")


class NotifySettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    targets: tuple[NotifyTarget, ...] = ()
    # per target: notifications waiting to be sent; past this, new ones are dropped (logged)
    queue_size: PositiveInt = 100
    retries: Annotated[int, msgspec.Meta(ge=0)] = 3  # after the first attempt
    retry_s: Positive = 5.0  # wait before the first retry; doubles each time


class PromotionSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # A model is traded only if its walk-forward trading beat this net return (after fees and
    # slippage) in at least half the folds and on average ...
    min_net_return_pct: float = 0.0
    # ... and its walk-forward AUC reached this floor (0.5: no better than a coin).
    min_auc: float = 0.5
    # A rejected symbol (NO_EDGE) is retrained after this many days of new candles, or at
    # once on the admin's `retrain`; never because a coverage tick ran.
    retry_after_days: Positive = 1.0


class Settings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    data_dir: str = "./var"
    timeframe: Literal["1m", "5m", "15m", "1h"] = "1m"
    heartbeat_s: Seconds = 600
    health_s: Seconds = 300
    exchange: ExchangeSettings = ExchangeSettings()
    universe: UniverseSettings = UniverseSettings()
    coverage: CoverageSettings = CoverageSettings()
    training: TrainingSettings = TrainingSettings()
    promotion: PromotionSettings = PromotionSettings()
    trading: TradingSettings = TradingSettings()
    logging: LoggingSettings = LoggingSettings()
    admin: AdminSettings = AdminSettings()
    notify: NotifySettings = NotifySettings()


def rule_problems(s: Settings) -> list[str]:
    """What breaks the rules across fields, one sentence each; empty when all hold.

    Checked by `load_settings` (a settings file is what a person writes). Code that builds
    `Settings` itself is trusted: tests use thresholds that trade on every candle on purpose.
    """
    problems = []
    trading, quote = s.trading, s.exchange.quote
    # entry_threshold > exit_threshold is TradingSettings' own rule (every Settings keeps it)
    if s.training.retry_max_s < s.training.retry_base_s:
        problems.append(
            f"training.retry_max_s ({s.training.retry_max_s} s) must be >= "
            f"training.retry_base_s ({s.training.retry_base_s} s): the backoff starts at "
            "retry_base_s and is capped at retry_max_s"
        )
    foreign = [x for x in s.universe.symbols if x.partition("/")[2] != quote.upper()]
    if foreign:
        problems.append(
            f"universe.symbols: {', '.join(foreign)} not quoted in exchange.quote {quote} "
            "(balances and stakes are in the quote currency)"
        )
    candle_s = timeframe_s(s.timeframe)
    if trading.candle_delay_s >= candle_s:
        problems.append(
            f"trading.candle_delay_s ({trading.candle_delay_s:g} s) must be shorter than "
            f"one {s.timeframe} candle ({candle_s} s)"
        )
    if s.coverage.max_model_age_s < s.coverage.interval_s:
        problems.append(
            f"coverage.max_model_age_s ({s.coverage.max_model_age_s} s) must be >= "
            f"coverage.interval_s ({s.coverage.interval_s} s): otherwise every model is "
            "already too old at the next check and is retrained at every check"
        )
    if s.exchange.kind == "paper" and trading.stake_quote > s.exchange.starting_balance:
        problems.append(
            f"trading.stake_quote ({trading.stake_quote:g} {quote}) is more than "
            f"exchange.starting_balance ({s.exchange.starting_balance:g} {quote}): "
            "no entry could ever be paid"
        )
    return problems


class SettingsError(Exception):
    """A settings file that cannot be used; the message is one line for the user."""


def load_settings(path: str | Path) -> Settings:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read settings file ({exc.strerror})") from exc
    if not raw.strip():
        return Settings()
    try:
        settings = msgspec.yaml.decode(raw, type=Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"{path}: {one_line(str(exc))}") from exc
    except msgspec.DecodeError as exc:
        raise SettingsError(f"{path}: not valid YAML ({one_line(str(exc))})") from exc
    problems = rule_problems(settings)
    if problems:
        raise SettingsError(f"{path}: {'; '.join(problems)}")
    return settings
