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

Positive = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
Seconds = Annotated[int, msgspec.Meta(gt=0)]  # whole seconds
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ExchangeSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    kind: Literal["paper", "ccxt"] = "paper"
    # paper: where prices come from. "synthetic" = the embedded deterministic market.
    market: Literal["synthetic"] = "synthetic"
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


class CoverageSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    interval_s: Seconds = 300
    # 14 days of 1-minute candles (20,160 rows) is the least history on which a
    # walk-forward validation still has three folds of several thousand rows each
    # and every weekday appears twice; a younger market is mostly listing-pump noise.
    min_history_days: Positive = 14
    max_model_age_s: Seconds = 7 * 86_400  # retrain in the background after a week


class TrainingSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # One worker on this 2-core machine keeps a core free for the trader.
    workers: PositiveInt = 1
    window_days: Positive = 90
    max_attempts: PositiveInt = 4
    retry_base_s: Seconds = 600  # 10 min, 20 min, 40 min ... between failed attempts
    retry_max_s: Seconds = 6 * 3600
    # label: is the close `horizon_bars` candles ahead more than `label_threshold` higher?
    horizon_bars: PositiveInt = 3
    # 5 bps: a move worth trading; also what makes a flat stablecoin untrainable
    label_threshold: NonNegative = 0.0005
    max_iter: PositiveInt = 100


class TradingSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    stake_quote: Positive = 100.0  # quote currency per entry
    max_open_positions: PositiveInt = 3
    stop_loss_pct: Annotated[float, msgspec.Meta(gt=0, lt=100)] = 2.0
    entry_threshold: Fraction = 0.55
    exit_threshold: Fraction = 0.45
    # A closed candle is final this many seconds after its close on real exchanges.
    candle_delay_s: NonNegative = 2.0


class LoggingSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


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


class Settings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    data_dir: str = "./var"
    timeframe: Literal["1m", "5m", "15m", "1h"] = "1m"
    heartbeat_s: Seconds = 600
    health_s: Seconds = 300
    exchange: ExchangeSettings = ExchangeSettings()
    universe: UniverseSettings = UniverseSettings()
    coverage: CoverageSettings = CoverageSettings()
    training: TrainingSettings = TrainingSettings()
    trading: TradingSettings = TradingSettings()
    logging: LoggingSettings = LoggingSettings()
    admin: AdminSettings = AdminSettings()


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
        return msgspec.yaml.decode(raw, type=Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"{path}: {one_line(str(exc))}") from exc
    except msgspec.DecodeError as exc:
        raise SettingsError(f"{path}: not valid YAML ({one_line(str(exc))})") from exc
