"""The ccxt client the adapter drives, and how it is called.

`CcxtClient` owns the ccxt client of one role (market data, orders, coverage and
downloads: each role has its own, docs/exchanges.md) and makes every call to it:
up to `connections` requests at a time (each on a ccxt instance of its own, which
share the loaded markets), only when the server's pause allows and the request
weight budget has room (both in the `ServerGate` every role's client shares),
each HTTP request timed out at the call's deadline at the latest, retried under
the retry policy (`exchange/retry.py`), with ccxt's errors turned into ours:
- InvalidNonce (-1021, clock skew) is refused on arrival, so nothing happened: the
  time difference is resynced and the request sent once more, for every call;
- AuthenticationError: `AuthenticationFailed` saying what to check; from then on
  every private call fails at once (trading stops) without calling the exchange;
- other failures: `TransientExchangeError` for ccxt's `OperationFailed` once the
  retries are spent, `ExchangeError` otherwise, never a bare ccxt or parse error.

Modes (`CcxtConfig.mode`): `sandbox` = ccxt's `set_sandbox_mode(True)` (Binance spot
testnet), `demo` = `enable_demo_trading(True)` (Binance demo trading), `live` = real
money. Never both sandbox and demo (ccxt raises NotSupported). Spot only: ccxt is
configured so that `load_markets` calls exchangeInfo alone (defaultType spot,
fetchMarkets types [spot], no currencies, no margin pairs), which testnet keys
without sapi access allow.

The client is a subclass of the ccxt class with three hooks:
- pacing: ccxt's rate limiter calls `pace(cost)`, which spends `cost` from the
  shared weight budget (waiting on our clock while the last minute is full, or
  failing when that wait would pass the call's deadline);
- `base_url` rewrites every URL in the client's `urls` (api, test, demo, ...) to one
  base, for gateways and for the loopback tests; a request to any other URL is
  refused;
- error tables: ccxt picks Binance's per-market error table by host name, so the
  rewritten URLs are translated back to the production ones for that lookup, and
  error codes map as in production (docs/exchanges.md).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import ccxt
import msgspec

from exchange.credentials import (
    API_KEY_ENV,
    API_SECRET_ENV,
    KEY_SOURCES,
    Credentials,
    RedactingLogger,
    redacted_error,
    without_query,
)
from exchange.gate import ServerGate
from exchange.retry import Call, GaveUp, Retrier, RetryPolicy, server_pause
from exchange.types import AuthenticationFailed, ExchangeError, TransientExchangeError

log = logging.getLogger("tradeactors.exchange")

T = TypeVar("T")

Mode = Literal["sandbox", "demo", "live"]


class CcxtConfig(msgspec.Struct, frozen=True, kw_only=True):
    exchange_id: str = "binance"
    mode: Mode = "sandbox"
    base_url: str | None = None
    quote: str = "USDT"
    timeout_ms: int = 10_000  # ccxt's HTTP timeout per request
    recv_window_ms: int = 5_000  # Binance rejects a signed request older than this on arrival
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)  # reads and cancels
    max_sends: int = 3  # create_order sends, each after a lookup found nothing
    markets_ttl_s: float = 60.0  # load_markets reuses markets younger than this
    tickers_ttl_s: float = 60.0  # fetch_tickers reuses tickers younger than this
    rate_limit: bool = True  # spend request cost from the gate's weight budget
    connections: int = 1  # requests in flight at once (one ccxt instance each)
    quiet: bool = False  # retries and give-ups at DEBUG: the caller reports them (market data)


class CcxtClient:
    """The ccxt client of one role and every call to it. Thread-safe: up to `connections`
    requests at once, each on a ccxt instance of its own; backoff and Retry-After waits
    happen outside them."""

    def __init__(
        self,
        config: CcxtConfig,
        credentials: Credentials,
        *,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        now_ms: Callable[[], int] | None = None,
        gate: ServerGate | None = None,
    ) -> None:
        if config.connections < 1:
            raise ExchangeError(f"connections must be >= 1, got {config.connections}")
        self.config = config
        self.credentials = credentials
        self.label = f"{config.exchange_id} ({config.mode})"
        self.lock = threading.RLock()  # `api`'s: for ccxt's own helpers (precision) too
        self.gate = gate or ServerGate(monotonic)
        self.retrier = Retrier(config.retry, sleep=sleep, monotonic=monotonic, gate=self.gate)
        self._sleep = sleep
        self._monotonic = monotonic
        self._now_ms = now_ms
        self._auth_failed: str | None = None
        self._local = threading.local()  # the call a thread's request belongs to (deadline)
        self.api = build_client(config, credentials, self._pace)
        # the instances not in use; `api` is the first, the others are made when needed
        self._free: list[tuple[Any, threading.RLock]] = [(self.api, self.lock)]
        self._made = 1
        self._pool = threading.Condition()

    def _pace(self, cost: float) -> None:
        """ccxt's rate limiter: spend `cost` from the shared weight budget, waiting on our
        clock while the last minute is full, unless that would pass the call's deadline."""
        call: Call | None = getattr(self._local, "call", None)
        while True:
            wait = self.gate.reserve(cost)
            if wait <= 0:
                return
            if call is not None and not call.may_wait(wait):
                raise TransientExchangeError(
                    f"{self.label}: request weight budget spent ({self.gate.used():.0f} of "
                    f"{self.gate.limit:.0f} units in the last minute); room in {wait:.1f} s, "
                    "past the call's deadline"
                )
            self._sleep(wait)

    @contextlib.contextmanager
    def _lease(self, call: Call, name: str) -> Iterator[Any]:
        """A ccxt instance for one request, used by no other thread meanwhile; waiting for one
        counts against the call's deadline like any other wait."""
        with self._pool:
            while not self._free and self._made >= self.config.connections:
                left = call.time_left()
                if left is not None and left <= 0:
                    raise TransientExchangeError(
                        f"{name}: no free connection before the call's deadline"
                    )
                self._pool.wait(timeout=left)
            if self._free:
                api, lock = self._free.pop()
            else:
                api, lock = self._clone(), threading.RLock()
                self._made += 1
        try:
            with lock:
                yield api
        finally:
            with self._pool:
                self._free.append((api, lock))
                self._pool.notify()

    def _clone(self) -> Any:
        clone = build_client(self.config, self.credentials, self._pace)
        share_markets(self.api, clone)
        return clone

    def share_markets(self, source: Any) -> None:
        """After `source` (re)loaded the markets: every other instance uses them too."""
        with self._pool:
            others = [api for api, _ in self._free if api is not source]
            if source is not self.api:
                others.append(self.api)
        for api in others:
            share_markets(source, api)

    def _share_time_difference(self, source: Any) -> None:
        diff = source.options.get("timeDifference")
        with self._pool:
            others = [api for api, _ in self._free] + [self.api]
        for api in others:
            api.options["timeDifference"] = diff

    def clean(self, exc: BaseException) -> str:
        return redacted_error(exc, self.credentials)

    def where(self, symbol: str | None) -> str:
        return symbol or self.label

    def server_now_ms(self, now_ms: int) -> int:
        """`now_ms` on the exchange's clock (ccxt keeps the difference it measured)."""
        return int(now_ms - int(self.api.options.get("timeDifference") or 0))

    def request(self, what: str, symbol: str | None, fn: Callable[[Any], T], call: Call) -> T:
        """One call `fn(api)` (possibly several HTTP requests) on a ccxt instance of its own,
        sent when the server's pause allows, each HTTP request timed out at the call's
        deadline at the latest; sent once more after a time resync if refused for clock
        skew."""
        name = f"{self.where(symbol)}: {what}"
        resynced = False
        while True:
            self.retrier.before_request(call, name)
            with self._lease(call, name) as api:
                api.timeout = self._timeout_ms(call, name)
                self._local.call = call
                try:
                    return fn(api)
                except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as exc:
                    self._note_pause(exc, api)
                    raise
                except ccxt.InvalidNonce as exc:
                    if resynced:
                        raise TransientExchangeError(
                            f"{name} refused for clock skew even after a time resync "
                            f"({self.clean(exc)}): sync this machine's clock (NTP)"
                        ) from None
                    self._resync(name, exc, api)
                    resynced = True
                finally:
                    self._local.call = None

    def _note_pause(self, exc: BaseException, api: Any) -> None:
        """A 418 or 429 that says how long: no client of this exchange sends until then."""
        headers = dict(api.last_response_headers or {})
        now_ms = None if self._now_ms is None else self.server_now_ms(self._now_ms())
        pause = server_pause(str(exc), headers, self.config.exchange_id, now_ms)
        if pause is not None:
            self.retrier.pause(*pause)

    def _timeout_ms(self, call: Call, name: str) -> int:
        """The HTTP timeout of the next request: the setting, or less to keep the deadline."""
        left = call.time_left()
        if left is None:
            return self.config.timeout_ms
        if left <= 0.001:
            raise TransientExchangeError(f"{name} not sent: the call's deadline has passed")
        return max(1, min(self.config.timeout_ms, int(left * 1000)))

    def _resync(self, name: str, exc: BaseException, api: Any) -> None:
        try:
            diff = api.load_time_difference()
        except ccxt.BaseError as failed:
            raise TransientExchangeError(
                f"{name} refused for clock skew ({self.clean(exc)}) and the time resync "
                f"failed: {self.clean(failed)}"
            ) from None
        self._share_time_difference(api)
        log.warning(
            "%s refused for clock skew (%s); resynced: local clock %+d ms from the "
            "exchange; retrying once",
            name,
            self.clean(exc),
            int(diff),
        )

    def read(
        self,
        what: str,
        symbol: str | None,
        fn: Callable[[Any], T],
        private: bool = False,
        within: Call | None = None,
    ) -> T:
        """A read or a cancel: transient failures retried under the retry policy;
        `within` a call whose deadline it shares."""
        if private:
            self.check_auth()
        where = self.where(symbol)

        # the market-data client fails hundreds of symbols at once when the exchange does:
        # the trader logs one line per reason, so its retries and give-ups are DEBUG
        level = logging.DEBUG if self.config.quiet else logging.WARNING

        def on_retry(exc: BaseException, retry: int, wait: float) -> None:
            log.log(
                level,
                "%s: %s failed (%s); retry %d/%d in %.1f s",
                where,
                what,
                self.clean(exc),
                retry,
                self.config.retry.max_retries,
                wait,
            )

        def give_up(exc: BaseException, stop: GaveUp) -> Exception:
            log.log(
                level,
                "%s: %s failed, giving up after %d attempts: %s",
                where,
                what,
                stop.failures,
                self.clean(exc),
            )
            return TransientExchangeError(
                f"{where}: {what} failed after {stop.failures} attempts: {self.clean(exc)}"
                + (f" ({stop.why})" if stop.why else "")
            )

        try:
            return self.retrier.run(
                lambda call: self.request(what, symbol, fn, call),
                retry_on=ccxt.OperationFailed,  # NetworkError and its subclasses
                on_retry=on_retry,
                give_up=give_up,
                within=within,
            )
        except ccxt.BaseError as exc:
            raise self._translate(what, symbol, exc) from None
        except ExchangeError:
            raise  # ours (a ban's gate, a failed resync, retries spent): already explained
        except Exception as exc:  # a reply ccxt could not parse, a bug: not a crash
            log.exception("%s: %s failed unexpectedly", where, what)
            raise ExchangeError(f"{where}: {what} failed unexpectedly: {self.clean(exc)}") from None

    def _translate(self, what: str, symbol: str | None, exc: BaseException) -> ExchangeError:
        if isinstance(exc, ccxt.AuthenticationError):
            return self.auth_error(exc)
        if isinstance(exc, ccxt.OperationFailed):
            return TransientExchangeError(f"{self.where(symbol)}: {what}: {self.clean(exc)}")
        return ExchangeError(f"{self.where(symbol)}: {what}: {self.clean(exc)}")

    def auth_error(self, exc: BaseException) -> AuthenticationFailed:
        """The keys were refused: says what to check, and stops every later private call."""
        message = (
            f"{self.label} refused the API keys ({self.clean(exc)}). Check that "
            f"{API_KEY_ENV} and {API_SECRET_ENV} hold keys from "
            f"{KEY_SOURCES[self.config.mode]}, that the key may trade spot, that an IP "
            "whitelist includes this machine, and that its clock is synced. Trading is "
            "stopped until the bot restarts"
        )
        if self._auth_failed is None:
            log.error("%s", message)
        self._auth_failed = message
        return AuthenticationFailed(message)

    def check_auth(self) -> None:
        if self._auth_failed is not None:
            raise AuthenticationFailed(self._auth_failed)

    def close(self) -> None:
        with self._pool:
            apis = [api for api, _ in self._free]
        for api in apis:
            api.close()


_MARKET_ATTRIBUTES = (
    "markets",
    "markets_by_id",
    "symbols",
    "ids",
    "currencies",
    "currencies_by_id",
    "codes",
    "baseCurrencies",
    "quoteCurrencies",
)


def share_markets(source: Any, target: Any) -> None:
    """`target` uses `source`'s loaded markets (the same objects, read-only: no copy, so
    tens of instances of one role cost one set of markets)."""
    for name in _MARKET_ATTRIBUTES:
        if hasattr(source, name):
            setattr(target, name, getattr(source, name))
    target.options["timeDifference"] = source.options.get("timeDifference")


def build_client(
    config: CcxtConfig, credentials: Credentials, pace: Callable[[float], None]
) -> Any:
    """A configured ccxt client for `config`, pacing its requests through `pace(cost)`."""
    base = getattr(ccxt, config.exchange_id, None)
    if config.exchange_id not in ccxt.exchanges or not isinstance(base, type):
        raise ExchangeError(f"unknown ccxt exchange id {config.exchange_id!r}")
    client = _client_class(base)(
        {
            "apiKey": credentials.api_key,
            "secret": credentials.secret,
            "timeout": config.timeout_ms,
            "enableRateLimit": config.rate_limit,
            "logger": RedactingLogger(credentials),
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
                "adjustForTimeDifference": True,
                "recvWindow": config.recv_window_ms,
                "warnOnFetchOpenOrdersWithoutSymbol": False,
                # market orders carry a base quantity, never a quote amount
                "createOrder": {"quoteOrderQty": False},
            },
        }
    )
    client._ta_pace = pace
    client._ta_base = None
    client._ta_production_urls = []
    try:
        if config.mode == "sandbox":
            client.set_sandbox_mode(True)
        elif config.mode == "demo":
            if not hasattr(client, "enable_demo_trading"):
                raise ExchangeError(
                    f"{config.exchange_id} has no demo trading in ccxt; use mode sandbox or live"
                )
            client.enable_demo_trading(True)
    except ccxt.NotSupported as exc:
        raise ExchangeError(
            f"{config.exchange_id} does not support mode {config.mode!r}: {exc}"
        ) from None
    if config.base_url:
        _point_at(client, config.base_url)
    return client


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
                f"{self.id} refused a request to {without_query(url)}: outside base_url {allowed}"
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


def _rewrite(url: str, base: str) -> str:
    return base.rstrip("/") + urlsplit(url).path


def _urls(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [u for v in value.values() for u in _urls(v)]
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return [value]
    return []
