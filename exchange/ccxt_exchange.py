"""`CcxtExchange`: the exchange port over a real exchange through ccxt (sync API).

Binance is the exchange tested in depth (against `tests/fake_binance.py`, driving
the real `ccxt.binance` client); other ccxt ids get the same unified calls.

Modes (`CcxtConfig.mode`): `sandbox` = ccxt's `set_sandbox_mode(True)` (Binance spot
testnet), `demo` = `enable_demo_trading(True)` (Binance demo trading), `live` = real
money. Never both sandbox and demo (ccxt raises NotSupported). Spot only: ccxt is
configured so that `load_markets` calls exchangeInfo alone (defaultType spot,
fetchMarkets types [spot], no currencies, no margin pairs), which testnet keys
without sapi access allow. `base_url` rewrites every URL in the client's `urls`
(api, test, demo, ...) to one base, for gateways and for the loopback tests; a
request to any other URL is refused. Error codes then still map as in production:
ccxt picks Binance's per-market error table by host name, so the rewritten URLs
are translated back to the production ones for that lookup (docs/exchanges.md).

Errors, by ccxt class:
- reads and cancels are retried on `OperationFailed` (NetworkError and its
  subclasses RequestTimeout, ExchangeNotAvailable, DDoSProtection,
  RateLimitExceeded — not a DDoSProtection subclass any more — and Binance's
  "internal error" codes) with bounded exponential backoff; every retry is logged;
- HTTP 429/418: the stated Retry-After is honoured; while a ban lasts no request
  is sent at all (a request during a 418 ban lengthens it); a wait longer than
  `max_wait_s` fails the call at once with the time the ban ends;
- InvalidNonce (-1021, clock skew): the time difference is resynced, then one retry;
- `create_order` is never retried blindly: after a failure whose outcome is unknown
  (timeout, 5xx) it waits until the request's recvWindow has passed (so the lost
  request can no longer be accepted), looks the order up by its client order id,
  and sends again only if the exchange does not have it;
- InsufficientFunds, InvalidOrder, BadRequest (and any other definite refusal) of
  an order: `OrderRejected`, logged with the symbol, never retried;
- AuthenticationError: `AuthenticationFailed` saying what to check; from then on
  every private call fails at once (trading stops) without calling the exchange.

Amounts and prices go through amount_to_precision / price_to_precision, and the
minimum amount and minimum notional are checked before sending (ccxt sends an order
below the minimum notional as is). Market orders are sent with a quantity, never a
quote amount. Partial fills are read from filled/remaining.

API keys come only from the environment (`Credentials.from_env`); they never appear
in a log line, an error message or a repr. All waits use the injected `sleep` and
`monotonic`, so tests never sleep.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import ccxt
import msgspec

from core.timeframes import timeframe_ms
from exchange.types import (
    AuthenticationFailed,
    Balance,
    Candle,
    ExchangeError,
    Market,
    Order,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    Side,
    Ticker,
    TransientExchangeError,
)

log = logging.getLogger("tradeactors.exchange")

T = TypeVar("T")

API_KEY_ENV = "TRADEACTORS_API_KEY"
API_SECRET_ENV = "TRADEACTORS_API_SECRET"
# What `exchange.live_confirm` must say, word for word, before mode `live` trades.
LIVE_CONFIRMATION = "I understand this trades real money"

Mode = Literal["sandbox", "demo", "live"]

KEY_SOURCES: dict[str, str] = {
    "sandbox": "https://testnet.binance.vision (spot testnet keys)",
    "demo": "https://demo.binance.com, API Management (demo trading keys)",
    "live": "the exchange's API management page (live keys)",
}

_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.CLOSED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.CANCELED,  # a market order that could not fill completely
    "rejected": OrderStatus.REJECTED,
}
_HTTP_STATUS = re.compile(r"\b(418|429)\b")
_QUERY = re.compile(r"\?\S*")
_SIGNATURE = re.compile(r"(signature=)[0-9a-fA-F]+")
_SELL_TOLERANCE = 0.01  # sell what is free when it is at most 1 % short (fees taken in base)


class _UnreadableReply(Exception):
    """An order reply that does not describe an order: its outcome is unknown."""


class MissingCredentials(ExchangeError):
    """The keys a mode needs are not in the environment."""


class Credentials:
    """An API key pair. Its repr, str and equality never show the secret or the key."""

    __slots__ = ("api_key", "secret")

    def __init__(self, api_key: str, secret: str) -> None:
        self.api_key = api_key
        self.secret = secret

    @classmethod
    def from_env(cls, environ: Mapping[str, str], mode: str = "sandbox") -> Credentials:
        missing = [name for name in (API_KEY_ENV, API_SECRET_ENV) if not environ.get(name)]
        if missing:
            raise MissingCredentials(
                f"exchange mode {mode!r} needs API keys: set {' and '.join(missing)} in the "
                f"environment (keys from {KEY_SOURCES.get(mode, KEY_SOURCES['live'])}); "
                "keys are never read from settings files"
            )
        return cls(environ[API_KEY_ENV].strip(), environ[API_SECRET_ENV].strip())

    def redact(self, text: str) -> str:
        """`text` with the key and the secret masked (real ones are 64 characters; a value
        under 8 characters is no secret, and masking it would garble every word)."""
        for secret in (self.secret, self.api_key):
            if len(secret) >= 8:
                text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return "Credentials(api_key=***, secret=***)"

    __str__ = __repr__


class _RedactingLogger:
    """The logger handed to ccxt: its DEBUG lines show request headers (the API key) and
    signed URLs; this one writes them with the key, the secret and signatures masked."""

    def __init__(self, credentials: Credentials) -> None:
        self._log = logging.getLogger("tradeactors.exchange.ccxt")
        self._creds = credentials

    def isEnabledFor(self, level: int) -> bool:
        return self._log.isEnabledFor(level)

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self._log.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        self._log.log(level, "%s", self._creds.redact(_SIGNATURE.sub(r"\1***", text)))

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.WARNING, msg, *args)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args)


class CcxtConfig(msgspec.Struct, frozen=True, kw_only=True):
    exchange_id: str = "binance"
    mode: Mode = "sandbox"
    base_url: str | None = None
    quote: str = "USDT"
    timeout_ms: int = 10_000  # ccxt's HTTP timeout per request
    recv_window_ms: int = 5_000  # Binance rejects a signed request older than this on arrival
    max_retries: int = 4  # per read or cancel, after the first attempt
    backoff_base_s: float = 0.5  # 0.5, 1, 2, 4 s ... between retries
    backoff_max_s: float = 8.0
    max_wait_s: float = 60.0  # longest single wait (Retry-After, ban) inside one call
    max_sends: int = 3  # create_order sends, each after a lookup found nothing
    markets_ttl_s: float = 60.0  # load_markets reuses markets younger than this
    tickers_ttl_s: float = 60.0  # fetch_tickers reuses tickers younger than this
    rate_limit: bool = True  # ccxt's request pacing (its waits go through `sleep`)


def _rewrite(url: str, base: str) -> str:
    return base.rstrip("/") + urlsplit(url).path


def _client_class(base: Any) -> Any:
    """A subclass of the ccxt class with three hooks: pacing through our sleep, the
    base_url guard, and production error tables for rewritten URLs."""

    def throttle(self: Any, cost: float | None = None) -> None:
        self._ta_pace(1.0 if cost is None else float(cost))

    def fetch(
        self: Any, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> Any:
        allowed = self._ta_base
        if allowed and not url.startswith(allowed):
            raise ccxt.ExchangeError(
                f"{self.id} refused a request to {_QUERY.sub('', url)}: outside base_url {allowed}"
            )
        return base.fetch(self, url, method, headers, body)

    namespace: dict[str, Any] = {"throttle": throttle, "fetch": fetch}
    if hasattr(base, "get_exceptions_by_url"):

        def get_exceptions_by_url(self: Any, url: str | None, exact_or_broad: str) -> Any:
            if url is not None:
                for new, old in self._ta_production_urls:
                    if url.startswith(new):
                        url = old + url[len(new) :]
                        break
            return base.get_exceptions_by_url(self, url, exact_or_broad)

        namespace["get_exceptions_by_url"] = get_exceptions_by_url
    return type(f"TradeActors_{base.__name__}", (base,), namespace)


class CcxtExchange:
    """`exchange.port.ExchangePort` over one ccxt client. Thread-safe: calls to the
    client are serialized (one request at a time, spaced by ccxt's rate limiter);
    backoff and Retry-After waits happen outside the lock."""

    def __init__(
        self,
        config: CcxtConfig,
        credentials: Credentials,
        *,
        now_ms: Callable[[], int],
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
    ) -> None:
        self.config = config
        self._creds = credentials
        self._now_ms = now_ms
        self._sleep = sleep
        self._monotonic = monotonic
        self.name = (
            config.exchange_id if config.mode == "live" else f"{config.exchange_id}-{config.mode}"
        )
        self._label = f"{config.exchange_id} ({config.mode})"
        self._lock = threading.RLock()
        self._last_request = -math.inf
        self._quiet_until = -math.inf  # no request before this (429/418 Retry-After)
        self._quiet_reason = ""
        self._auth_failed: str | None = None
        self._markets: dict[str, Market] = {}
        self._markets_at = -math.inf
        self._tickers: dict[str, Ticker] = {}
        self._tickers_at = -math.inf
        self._history_start: dict[str, int] = {}
        self._last_close: dict[str, float] = {}
        self._client = self._build_client()

    def __repr__(self) -> str:
        return f"CcxtExchange({self._label}, base_url={self.config.base_url!r})"

    # --- the client ------------------------------------------------------------------

    def _build_client(self) -> Any:
        cfg = self.config
        base = getattr(ccxt, cfg.exchange_id, None)
        if cfg.exchange_id not in ccxt.exchanges or not isinstance(base, type):
            raise ExchangeError(f"unknown ccxt exchange id {cfg.exchange_id!r}")
        client = _client_class(base)(
            {
                "apiKey": self._creds.api_key,
                "secret": self._creds.secret,
                "timeout": cfg.timeout_ms,
                "enableRateLimit": cfg.rate_limit,
                "logger": _RedactingLogger(self._creds),
                "options": {
                    "defaultType": "spot",
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False,
                    "fetchMargins": False,
                    "adjustForTimeDifference": True,
                    "recvWindow": cfg.recv_window_ms,
                    "warnOnFetchOpenOrdersWithoutSymbol": False,
                    # market orders carry a base quantity, never a quote amount
                    "createOrder": {"quoteOrderQty": False},
                },
            }
        )
        client._ta_pace = self._pace
        client._ta_base = None
        client._ta_production_urls = []
        try:
            if cfg.mode == "sandbox":
                client.set_sandbox_mode(True)
            elif cfg.mode == "demo":
                if not hasattr(client, "enable_demo_trading"):
                    raise ExchangeError(
                        f"{cfg.exchange_id} has no demo trading in ccxt; use mode sandbox or live"
                    )
                client.enable_demo_trading(True)
        except ccxt.NotSupported as exc:
            raise ExchangeError(
                f"{cfg.exchange_id} does not support mode {cfg.mode!r}: {exc}"
            ) from None
        if cfg.base_url:
            self._point_at(client, cfg.base_url)
        return client

    @staticmethod
    def _point_at(client: Any, base_url: str) -> None:
        """Rewrite every URL of the client to base_url, remembering production ones."""
        base = base_url.rstrip("/")
        pairs: dict[str, str | None] = {}
        for url in _urls(client.urls.get("api")):
            new = _rewrite(url, base)
            old = pairs.get(new, url)
            pairs[new] = url if old == url else None  # two hosts, one path: ambiguous
        client._ta_production_urls = sorted(
            ((new, old) for new, old in pairs.items() if old is not None),
            key=lambda p: -len(p[0]),
        )

        def rewrite(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: rewrite(v) for k, v in value.items()}
            if isinstance(value, str) and value.startswith(("http://", "https://")):
                return _rewrite(value, base)
            return value

        client.urls = {
            key: rewrite(value) if key not in ("logo", "www", "doc") else value
            for key, value in client.urls.items()
        }
        client._ta_base = base + "/"

    def _pace(self, cost: float) -> None:
        """ccxt's rate limiter (rateLimit ms per unit of cost), on our clock and sleep."""
        interval = self._client.rateLimit * cost / 1000.0
        wait = self._last_request + interval - self._monotonic()
        if wait > 0:
            self._sleep(wait)
        self._last_request = self._monotonic()

    # --- calling it: gate, lock, retries ------------------------------------------------

    def _clean(self, exc: BaseException) -> str:
        text = _QUERY.sub("", f"{type(exc).__name__}: {exc}")
        return self._creds.redact(" ".join(text.split()))[:500]

    def _where(self, symbol: str | None) -> str:
        return symbol or self._label

    def _gate(self, what: str, symbol: str | None) -> None:
        """Wait out a stated Retry-After (up to max_wait_s), or refuse to call at all."""
        left = self._quiet_until - self._monotonic()
        if left <= 0:
            return
        if left > self.config.max_wait_s:
            raise TransientExchangeError(
                f"{self._where(symbol)}: {what} not sent: {self._quiet_reason}; "
                f"{left:.0f} s left, no request until then"
            )
        log.warning("%s: %s waits %.1f s (%s)", self._where(symbol), what, left, self._quiet_reason)
        self._sleep(left)

    def _request(self, what: str, symbol: str | None, fn: Callable[[Any], T]) -> T:
        """One call to the client (possibly several HTTP requests), under the lock."""
        self._gate(what, symbol)
        with self._lock:
            try:
                return fn(self._client)
            except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as exc:
                self._note_rate_limit(exc, dict(self._client.last_response_headers or {}))
                raise

    def _note_rate_limit(self, exc: BaseException, headers: dict[str, str]) -> None:
        match = _HTTP_STATUS.search(str(exc))
        status = match.group(1) if match else None
        retry_after: float | None = None
        for key, value in headers.items():
            if key.lower() == "retry-after":
                try:
                    retry_after = float(value)
                except ValueError:
                    retry_after = None
        if status == "418":
            retry_after = retry_after if retry_after is not None else 120.0
            reason = f"IP banned by {self.config.exchange_id} (HTTP 418) for {retry_after:.0f} s"
        elif retry_after is not None:
            reason = f"rate limited (HTTP {status or 429}), Retry-After {retry_after:.0f} s"
        else:
            return
        self._quiet_until = max(self._quiet_until, self._monotonic() + retry_after)
        self._quiet_reason = reason

    def _resync(self, what: str, symbol: str | None, exc: BaseException) -> None:
        try:
            with self._lock:
                diff = self._client.load_time_difference()
        except ccxt.BaseError as failed:
            raise TransientExchangeError(
                f"{self._where(symbol)}: {what} refused for clock skew ({self._clean(exc)}) and "
                f"the time resync failed: {self._clean(failed)}"
            ) from None
        log.warning(
            "%s: %s refused for clock skew (%s); resynced: local clock %+d ms from the "
            "exchange; retrying once",
            self._where(symbol),
            what,
            self._clean(exc),
            int(diff),
        )

    def _backoff(self, attempt: int) -> float:
        """Wait before retry `attempt` (1, 2, ...): exponential, capped, and never shorter
        than a stated Retry-After."""
        wait = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1))
        return max(wait, self._quiet_until - self._monotonic())

    def _read(
        self, what: str, symbol: str | None, fn: Callable[[Any], T], private: bool = False
    ) -> T:
        """A read or a cancel: transient failures retried with bounded backoff."""
        if private:
            self._check_auth()
        attempt, resynced = 0, False
        while True:
            try:
                return self._request(what, symbol, fn)
            except ccxt.InvalidNonce as exc:
                if resynced:
                    raise self._skew_error(what, symbol, exc) from None
                self._resync(what, symbol, exc)
                resynced = True
            except ccxt.OperationFailed as exc:  # NetworkError and its subclasses
                attempt += 1
                wait = self._backoff(attempt)
                if attempt > self.config.max_retries or wait > self.config.max_wait_s:
                    log.warning(
                        "%s: %s failed, giving up after %d attempts: %s",
                        self._where(symbol),
                        what,
                        attempt,
                        self._clean(exc),
                    )
                    raise TransientExchangeError(
                        f"{self._where(symbol)}: {what} failed after {attempt} attempts: "
                        f"{self._clean(exc)}"
                        + (f" ({self._quiet_reason})" if wait > self.config.max_wait_s else "")
                    ) from None
                log.warning(
                    "%s: %s failed (%s); retry %d/%d in %.1f s",
                    self._where(symbol),
                    what,
                    self._clean(exc),
                    attempt,
                    self.config.max_retries,
                    wait,
                )
                self._sleep(wait)
            except ccxt.BaseError as exc:
                raise self._translate(what, symbol, exc) from None
            except ExchangeError:
                raise  # ours (a ban's gate, a failed resync): already explained
            except Exception as exc:  # a reply ccxt could not parse, a bug: not a crash
                log.exception("%s: %s failed unexpectedly", self._where(symbol), what)
                raise ExchangeError(
                    f"{self._where(symbol)}: {what} failed unexpectedly: {self._clean(exc)}"
                ) from None

    def _skew_error(self, what: str, symbol: str | None, exc: BaseException) -> ExchangeError:
        return TransientExchangeError(
            f"{self._where(symbol)}: {what} refused for clock skew even after a time resync "
            f"({self._clean(exc)}): sync this machine's clock (NTP)"
        )

    def _translate(self, what: str, symbol: str | None, exc: BaseException) -> ExchangeError:
        if isinstance(exc, ccxt.AuthenticationError):
            return self._auth_error(exc)
        if isinstance(exc, ccxt.OperationFailed):
            return TransientExchangeError(f"{self._where(symbol)}: {what}: {self._clean(exc)}")
        return ExchangeError(f"{self._where(symbol)}: {what}: {self._clean(exc)}")

    def _auth_error(self, exc: BaseException) -> AuthenticationFailed:
        cfg = self.config
        message = (
            f"{self._label} refused the API keys ({self._clean(exc)}). Check that "
            f"{API_KEY_ENV} and {API_SECRET_ENV} hold keys from {KEY_SOURCES[cfg.mode]}, "
            "that the key may trade spot, that an IP whitelist includes this machine, and "
            "that its clock is synced. Trading is stopped until the bot restarts"
        )
        if self._auth_failed is None:
            log.error("%s", message)
        self._auth_failed = message
        return AuthenticationFailed(message)

    def _check_auth(self) -> None:
        if self._auth_failed is not None:
            raise AuthenticationFailed(self._auth_failed)

    # --- markets and data --------------------------------------------------------------

    def load_markets(self) -> dict[str, Market]:
        if self._monotonic() - self._markets_at < self.config.markets_ttl_s and self._markets:
            return dict(self._markets)
        raw = self._read("load_markets", None, lambda c: c.load_markets(reload=True))
        mode = self._client.precisionMode
        markets: dict[str, Market] = {}
        for symbol, m in raw.items():
            if not m.get("spot"):
                continue
            limits = m.get("limits") or {}
            precision = m.get("precision") or {}
            markets[symbol] = Market(
                symbol=symbol,
                base=m["base"],
                quote=m["quote"],
                active=bool(m.get("active", True)),
                spot=True,
                min_amount=_num((limits.get("amount") or {}).get("min")),
                min_notional=_num((limits.get("cost") or {}).get("min")),
                amount_step=_step(precision.get("amount"), mode),
                price_step=_step(precision.get("price"), mode),
            )
        self._markets, self._markets_at = markets, self._monotonic()
        return dict(markets)

    def fetch_tickers(self) -> dict[str, Ticker]:
        """Every spot ticker, from one request; reused for tickers_ttl_s (it is expensive:
        weight 80 on Binance)."""
        if self._monotonic() - self._tickers_at < self.config.tickers_ttl_s and self._tickers:
            return dict(self._tickers)
        markets = self.load_markets()
        raw = self._read("fetch_tickers", None, lambda c: c.fetch_tickers())
        tickers: dict[str, Ticker] = {}
        for symbol, t in raw.items():
            if symbol not in markets:
                continue
            last = _num(t.get("last") or t.get("close"))
            volume = t.get("quoteVolume")
            if volume is None:
                volume = _num(t.get("baseVolume")) * last
            tickers[symbol] = Ticker(symbol=symbol, last=last, quote_volume=_num(volume))
        self._tickers, self._tickers_at = tickers, self._monotonic()
        return dict(tickers)

    def history_start_ms(self, symbol: str) -> int | None:
        """The open time of the first 1m candle: found with the first daily candle
        (since=0, limit=1), then the first minute of that day. Cached: it never changes."""
        if symbol in self._history_start:
            return self._history_start[symbol]
        self._require_market(symbol)
        days = self._read(
            "history start",
            symbol,
            lambda c: c.fetch_ohlcv(symbol, "1d", since=0, limit=1),
        )
        if not days:
            return None
        day = int(days[0][0])
        minutes = self._read(
            "history start",
            symbol,
            lambda c: c.fetch_ohlcv(symbol, "1m", since=day, limit=1),
        )
        start = int(minutes[0][0]) if minutes else day
        self._history_start[symbol] = start
        return start

    def _server_now_ms(self) -> int:
        diff = self._client.options.get("timeDifference") or 0
        return int(self._now_ms() - int(diff))

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int = 1000
    ) -> list[Candle]:
        """Closed candles only: the exchange's last row, still forming, is dropped."""
        try:
            tf = timeframe_ms(timeframe)
        except ValueError as exc:
            raise ExchangeError(f"{symbol}: {exc}") from None
        if limit < 1:
            raise ExchangeError(f"{symbol}: ohlcv limit {limit} must be >= 1")
        self._require_market(symbol)
        ask = min(limit + 1, 1000) if since_ms is None else min(limit, 1000)
        # a candle is closed if it had closed when the request left: taken before sending,
        # so a reply that crosses a candle boundary cannot pass a half-formed candle
        cutoff = self._server_now_ms()
        rows = self._read(
            "fetch_ohlcv",
            symbol,
            lambda c: c.fetch_ohlcv(symbol, timeframe, since=since_ms, limit=ask),
        )
        try:
            closed: list[Candle] = [
                [float(x) for x in row[:6]] for row in rows if int(row[0]) + tf <= cutoff
            ]
        except (TypeError, ValueError, IndexError) as exc:
            raise ExchangeError(f"{symbol}: unreadable candles from {self._label}: {exc}") from None
        if since_ms is None:
            closed = closed[-limit:]
        if closed:
            self._last_close[symbol] = closed[-1][4]
        return closed

    def _require_market(self, symbol: str) -> Market:
        market = self.load_markets().get(symbol)
        if market is None:
            raise ExchangeError(f"{symbol}: not a spot market on {self._label}")
        return market

    # --- orders ---------------------------------------------------------------------------

    def create_order(self, request: OrderRequest) -> Order:
        self._check_auth()
        symbol, coid = request.symbol, request.client_order_id
        market = self._require_market(symbol)
        if not market.active:
            raise self._rejected(symbol, coid, "market is not trading now")
        if not coid:
            raise self._rejected(symbol, coid, "empty client order id")
        if request.kind not in ("market", "limit"):
            raise self._rejected(symbol, coid, f"unknown order kind {request.kind!r}")
        side = Side(request.side)
        amount = self._sellable(market, side, float(request.amount), coid)
        amount, price = self._checked(market, request, amount)
        params = {"clientOrderId": coid}  # ccxt sends it as Binance's newClientOrderId
        resynced = False
        sends = 0
        while True:
            sends += 1
            sent_at = self._monotonic()
            try:
                raw = self._request(
                    "create_order",
                    symbol,
                    lambda c: c.create_order(
                        symbol, request.kind, side.value, amount, price, dict(params)
                    ),
                )
                if not isinstance(raw, dict) or not raw.get("id"):
                    raise _UnreadableReply(f"{self._label} sent an order reply without an id")
                return self._order(raw, request)
            except ExchangeError:
                raise  # ours: not sent during a ban, or already explained
            except ccxt.InvalidNonce as exc:  # refused on arrival: nothing was placed
                if resynced:
                    raise self._skew_error("create_order", symbol, exc) from None
                self._resync("create_order", symbol, exc)
                resynced = True
                sends -= 1
                continue
            except ccxt.AuthenticationError as exc:
                raise self._auth_error(exc) from None
            except ccxt.InvalidOrder as exc:
                if sends > 1 and "Duplicate order" in str(exc):
                    found = self.fetch_order(symbol, coid)  # our earlier send did arrive
                    if found is not None:
                        return found
                raise self._rejected(symbol, coid, self._clean(exc)) from None
            except Exception as exc:
                if isinstance(exc, ccxt.BaseError) and not isinstance(exc, ccxt.OperationFailed):
                    # InsufficientFunds, BadRequest, MarketClosed, ...: refused, not placed
                    raise self._rejected(symbol, coid, self._clean(exc)) from None
                # outcome unknown (timeout, 5xx, a reply ccxt could not read): look it up,
                # do not resend blindly
                found = self._look_up_after(exc, symbol, coid, sent_at, sends)
                if found is not None:
                    return found
                if sends >= self.config.max_sends:
                    raise TransientExchangeError(
                        f"{symbol}: order {coid} not placed after {sends} sends "
                        f"(last: {self._clean(exc)}); the exchange does not have it"
                    ) from None
                log.warning(
                    "%s: order %s is not on the exchange after %s; sending it again (%d/%d)",
                    symbol,
                    coid,
                    type(exc).__name__,
                    sends + 1,
                    self.config.max_sends,
                )

    def _look_up_after(
        self, exc: BaseException, symbol: str, coid: str, sent_at: float, sends: int
    ) -> Order | None:
        """After a send whose outcome is unknown: wait until its recvWindow has passed (the
        exchange can no longer accept it), then ask for the order by client id."""
        window_s = self.config.recv_window_ms / 1000.0 + 1.0  # + Binance's 1 s ahead margin
        wait = max(
            sent_at + window_s - self._monotonic(),
            self._backoff(sends),
        )
        log.warning(
            "%s: order %s outcome unknown (%s); looking it up by client order id in %.1f s",
            symbol,
            coid,
            self._clean(exc),
            wait,
        )
        if wait > self.config.max_wait_s:
            raise TransientExchangeError(
                f"{symbol}: order {coid} outcome unknown ({self._clean(exc)}) and the exchange "
                f"asks to wait {wait:.0f} s; look it up later by its client order id"
            ) from None
        self._sleep(wait)
        try:
            found = self.fetch_order(symbol, coid)
        except AuthenticationFailed:
            raise
        except ExchangeError as lookup:
            raise TransientExchangeError(
                f"{symbol}: order {coid} outcome unknown ({self._clean(exc)}) and the lookup "
                f"failed ({lookup}); look it up later by its client order id"
            ) from None
        if found is not None:
            log.info(
                "%s: order %s was placed (found after %s: %s, filled %.8g); not sent again",
                symbol,
                coid,
                type(exc).__name__,
                found.status,
                found.filled,
            )
        return found

    def _sellable(self, market: Market, side: Side, amount: float, coid: str) -> float:
        """A sell of slightly more than is free (the buy's fee was taken in the base
        asset) sells what is free instead of failing for insufficient balance."""
        if side is not Side.SELL:
            return amount
        try:
            free = self.fetch_balances().get(market.base)
        except TransientExchangeError as exc:
            log.warning(
                "%s: order %s: balance unknown (%s); selling as asked", market.symbol, coid, exc
            )
            return amount
        have = free.free if free is not None else 0.0
        if have < amount and have >= amount * (1.0 - _SELL_TOLERANCE):
            log.info(
                "%s: order %s sells the %.10g %s free instead of %.10g (fees were taken in %s)",
                market.symbol,
                coid,
                have,
                market.base,
                amount,
                market.base,
            )
            return have
        return amount

    def _checked(
        self, market: Market, request: OrderRequest, amount: float
    ) -> tuple[float, float | None]:
        """Amount and price rounded to the market's precision, checked against its minimums."""
        symbol, coid = market.symbol, request.client_order_id
        if not (math.isfinite(amount) and amount > 0):
            raise self._rejected(symbol, coid, f"amount {amount} must be a positive number")
        with self._lock:
            try:
                rounded = float(self._client.amount_to_precision(symbol, amount))
            except ccxt.InvalidOrder:  # rounds to nothing
                rounded = 0.0
            try:
                price = (
                    float(self._client.price_to_precision(symbol, request.price))
                    if request.kind == "limit" and request.price is not None
                    else None
                )
            except ccxt.BaseError as exc:
                raise self._rejected(symbol, coid, self._clean(exc)) from None
        if request.kind == "limit" and not (price is not None and price > 0):
            raise self._rejected(symbol, coid, f"limit order needs a positive price, got {price}")
        if rounded <= 0 or rounded < market.min_amount:
            raise self._rejected(
                symbol,
                coid,
                f"amount {amount:.10g} {market.base} (rounded {rounded:.10g}) is below the "
                f"minimum amount {market.min_amount:.10g} {market.base}",
            )
        ref = price if price is not None else (request.price or self._reference_price(symbol))
        notional = rounded * ref
        if market.min_notional and notional < market.min_notional:
            raise self._rejected(
                symbol,
                coid,
                f"notional {notional:.8g} {market.quote} ({rounded:.10g} {market.base} at "
                f"{ref:.8g}) is below the minimum notional {market.min_notional:g} "
                f"{market.quote}; not sent",
            )
        return rounded, price

    def _reference_price(self, symbol: str) -> float:
        last = self._last_close.get(symbol)
        if last is None:
            ticker = self._read("fetch_ticker", symbol, lambda c: c.fetch_ticker(symbol))
            last = _num(ticker.get("last") or ticker.get("close"))
        return last

    def _rejected(self, symbol: str, coid: str, why: str) -> OrderRejected:
        log.warning("%s: order %s rejected: %s", symbol, coid, why)
        return OrderRejected(f"{symbol}: order {coid} rejected: {why}")

    def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        self._check_auth()
        try:
            raw = self._read(
                "cancel_order",
                symbol,
                lambda c: c.cancel_order(None, symbol, self._by_client_id(client_order_id)),
                private=True,
            )
        except ExchangeError as exc:
            if isinstance(exc, AuthenticationFailed | TransientExchangeError):
                raise
            # unknown to cancel: already filled or canceled (maybe by an earlier try)?
            found = self.fetch_order(symbol, client_order_id)
            if found is None:
                raise ExchangeError(
                    f"{symbol}: no order with client order id {client_order_id!r} to cancel"
                ) from None
            return found
        return self._order(raw)

    def _by_client_id(self, client_order_id: str) -> dict[str, str]:
        key = (
            "origClientOrderId"
            if self.config.exchange_id.startswith("binance")
            else "clientOrderId"
        )
        return {key: client_order_id}

    def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        self._check_auth()

        def get(c: Any) -> Any:
            try:
                return c.fetch_order(None, symbol, self._by_client_id(client_order_id))
            except ccxt.OrderNotFound:
                return None

        raw = self._read("fetch_order", symbol, get, private=True)
        return None if raw is None else self._order(raw)

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        raw = self._read(
            "fetch_open_orders", symbol, lambda c: c.fetch_open_orders(symbol), private=True
        )
        return [self._order(o, with_trades=False) for o in raw]

    def fetch_balances(self) -> dict[str, Balance]:
        raw = self._read("fetch_balances", None, lambda c: c.fetch_balance(), private=True)
        free, used = raw.get("free") or {}, raw.get("used") or {}
        out: dict[str, Balance] = {}
        for asset in sorted(set(free) | set(used)):
            f, u = _num(free.get(asset)), _num(used.get(asset))
            if asset == self.config.quote or f or u:
                out[asset] = Balance(asset=asset, free=f, used=u)
        return out

    def close(self) -> None:
        with self._lock:
            self._client.close()

    # --- converting ccxt orders -------------------------------------------------------------

    def _order(
        self, raw: dict[str, Any], request: OrderRequest | None = None, with_trades: bool = True
    ) -> Order:
        if not isinstance(raw, dict) or not raw.get("id"):
            raise ExchangeError(f"{self._label} sent an unreadable order: {str(raw)[:200]}")
        symbol = raw.get("symbol") or (request.symbol if request else "")
        base, _, quote = symbol.partition("/")
        amount = _num(raw.get("amount"))
        filled = _num(raw.get("filled"))
        remaining = raw.get("remaining")
        average = raw.get("average")
        fees = list(raw.get("fees") or ([raw["fee"]] if raw.get("fee") else []))
        if filled > 0 and not fees and with_trades and raw.get("id"):
            fees = self._fees_from_trades(symbol, str(raw["id"]))
        fee_quote = 0.0
        for fee in fees:
            cost, currency = _num(fee.get("cost")), fee.get("currency")
            if currency == quote:
                fee_quote += cost
            elif currency == base:
                fee_quote += cost * _num(average)
            # a fee in a third asset (BNB) is not converted: it is not paid in this pair
        status = _STATUS.get(str(raw.get("status")), OrderStatus.OPEN)
        price = raw.get("price")
        return Order(
            symbol=symbol,
            side=Side(raw.get("side") or (request.side if request else "buy")),
            client_order_id=str(
                raw.get("clientOrderId") or (request.client_order_id if request else "")
            ),
            exchange_order_id=str(raw.get("id") or ""),
            status=status,
            amount=amount,
            filled=filled,
            remaining=_num(remaining) if remaining is not None else max(0.0, amount - filled),
            average_price=float(average) if average else None,
            fee_quote=fee_quote,
            created_ms=int(raw.get("timestamp") or self._now_ms()),
            kind=str(raw.get("type") or (request.kind if request else "market")).lower(),
            price=float(price) if price else None,
        )

    def _fees_from_trades(self, symbol: str, order_id: str) -> list[dict[str, Any]]:
        """A looked-up order carries no fills: its fees come from its trades."""
        try:
            trades = self._read(
                "fetch_my_trades",
                symbol,
                lambda c: c.fetch_my_trades(symbol, params={"orderId": order_id}),
                private=True,
            )
        except ExchangeError as exc:
            log.warning("%s: fees of order %s unknown: %s", symbol, order_id, exc)
            return []
        fees: list[dict[str, Any]] = []
        for trade in trades:
            fee = dict(trade.get("fee") or {})
            if fee.get("currency") == symbol.partition("/")[0]:  # base fee at the trade price
                fee = {
                    "currency": symbol.partition("/")[2],
                    "cost": _num(fee.get("cost")) * _num(trade.get("price")),
                }
            if fee:
                fees.append(fee)
        return fees


def _urls(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [u for v in value.values() for u in _urls(v)]
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return [value]
    return []


def _num(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _step(precision: Any, mode: int) -> float:
    """A ccxt precision as a step size (TICK_SIZE: already one; DECIMAL_PLACES: 10**-p)."""
    if precision is None:
        return 0.0
    if mode == ccxt.DECIMAL_PLACES:
        return float(10.0 ** -float(precision))
    if mode == ccxt.TICK_SIZE:
        return _num(precision)
    return 0.0  # significant digits: no fixed step
