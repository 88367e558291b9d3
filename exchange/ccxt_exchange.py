"""`CcxtExchange`: the exchange port over a real exchange through ccxt (sync API).

Binance is the exchange tested in depth (against `tests/fake_binance.py`, driving
the real `ccxt.binance` client); other ccxt ids get the same unified calls. The
adapter, by concern:
- `exchange/credentials.py`: API keys, only from the environment (`Credentials.from_env`);
  they never appear in a log line, an error message or a repr;
- `exchange/ccxt_client.py`: `CcxtConfig` and the modes (sandbox, demo, live); the
  ccxt client with its hooks (pacing on our clock, `base_url`, production error
  tables), and `CcxtClient`, which makes every call to it: one at a time, clock skew
  resynced, authentication failures stop trading, ccxt errors turned into ours;
- `exchange/retry.py`: the retry policy: backoff, Retry-After and bans (no request
  while one lasts), the longest wait and a call's deadline;
- `exchange/ccxt_mapping.py`: ccxt's dicts turned into our types;
- `exchange/ccxt_orders.py`: order placement: checks before sending, sends that never
  double an order, cancels and lookups by client order id;
- this module: the port itself, and market data (markets, tickers, candles, balances).

All waits use the injected `sleep` and `monotonic`, so tests never sleep.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from core.timeframes import timeframe_ms
from exchange.ccxt_client import CcxtClient, CcxtConfig
from exchange.ccxt_mapping import closed_candles, num, to_balances, to_markets, to_tickers
from exchange.ccxt_orders import CcxtOrders
from exchange.credentials import Credentials
from exchange.gate import ServerGate
from exchange.types import Balance, Candle, ExchangeError, Market, Order, OrderRequest, Ticker

MARKETS_MIN_AGE_S = 60.0  # an unknown symbol reloads markets at most this often


class CcxtExchange:
    """`exchange.port.ExchangePort` over one ccxt client. Thread-safe (see `CcxtClient`)."""

    def __init__(
        self,
        config: CcxtConfig,
        credentials: Credentials,
        *,
        now_ms: Callable[[], int],
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        gate: ServerGate | None = None,
        role: str = "",
    ) -> None:
        self.config = config
        self.name = (
            config.exchange_id if config.mode == "live" else f"{config.exchange_id}-{config.mode}"
        )
        # Binance accepts a request up to recvWindow after its timestamp, and 1 s ahead
        self.settle_window_s = config.recv_window_ms / 1000.0 + 1.0
        self._now_ms = now_ms
        self._monotonic = monotonic
        self.role = role  # "market data", "orders", "downloads": for logs
        self._client = CcxtClient(
            config, credentials, sleep=sleep, monotonic=monotonic, now_ms=now_ms, gate=gate
        )
        self._orders = CcxtOrders(
            self._client,
            market=self._require_market,
            balances=self.fetch_balances,
            reference_price=self._reference_price,
            now_ms=now_ms,
            monotonic=monotonic,
        )
        self._markets: dict[str, Market] = {}
        self._markets_at = -math.inf
        self._markets_lock = threading.Lock()  # one reload at a time, the others wait for it
        self._tickers: dict[str, Ticker] = {}
        self._tickers_at = -math.inf
        self._history_start: dict[str, int] = {}
        self._last_close: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"CcxtExchange({self._client.label}, base_url={self.config.base_url!r})"

    # --- markets and data --------------------------------------------------------------

    @property
    def rate_limit_ms(self) -> float:
        """ccxt's rateLimit: ms per unit of request cost, the pace of the exchange's own limit."""
        return float(self._client.api.rateLimit)

    @property
    def gate(self) -> ServerGate:
        """The server's pause and the weight budget this client shares with the others."""
        return self._client.gate

    def load_markets(self) -> dict[str, Market]:
        return dict(self._load_markets(self.config.markets_ttl_s))

    def _load_markets(self, ttl_s: float) -> dict[str, Market]:
        """The markets, reloaded when older than `ttl_s`; concurrent callers (the market-data
        role's requests) wait for one reload instead of each sending one (weight 20)."""
        with self._markets_lock:
            if self._monotonic() - self._markets_at < ttl_s and self._markets:
                return self._markets

            def load(c: Any) -> Any:
                raw = c.load_markets(reload=True)
                self._client.share_markets(c)
                return raw

            raw = self._client.read("load_markets", None, load)
            markets = to_markets(raw, self._client.api.precisionMode)
            self._markets, self._markets_at = markets, self._monotonic()
            return markets

    def fetch_tickers(self) -> dict[str, Ticker]:
        """Every spot ticker, from one request; reused for tickers_ttl_s (it is expensive:
        weight 80 on Binance)."""
        if self._monotonic() - self._tickers_at < self.config.tickers_ttl_s and self._tickers:
            return dict(self._tickers)
        markets = self.load_markets()
        raw = self._client.read("fetch_tickers", None, lambda c: c.fetch_tickers())
        tickers = to_tickers(raw, markets)
        self._tickers, self._tickers_at = tickers, self._monotonic()
        return dict(tickers)

    def history_start_ms(self, symbol: str) -> int | None:
        """The open time of the first 1m candle: found with the first daily candle
        (since=0, limit=1), then the first minute of that day. Cached: it never changes."""
        if symbol in self._history_start:
            return self._history_start[symbol]
        self._require_market(symbol)
        days = self._client.read(
            "history start",
            symbol,
            lambda c: c.fetch_ohlcv(symbol, "1d", since=0, limit=1),
        )
        if not days:
            return None
        day = int(days[0][0])
        minutes = self._client.read(
            "history start",
            symbol,
            lambda c: c.fetch_ohlcv(symbol, "1m", since=day, limit=1),
        )
        start = int(minutes[0][0]) if minutes else day
        self._history_start[symbol] = start
        return start

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
        cutoff = self._client.server_now_ms(self._now_ms())
        rows = self._client.read(
            "fetch_ohlcv",
            symbol,
            lambda c: c.fetch_ohlcv(symbol, timeframe, since=since_ms, limit=ask),
        )
        try:
            closed = closed_candles(rows, tf, cutoff)
        except (TypeError, ValueError, IndexError) as exc:
            raise ExchangeError(
                f"{symbol}: unreadable candles from {self._client.label}: {exc}"
            ) from None
        if since_ms is None:
            closed = closed[-limit:]
        if closed:
            self._last_close[symbol] = closed[-1][4]
        return closed

    def _require_market(self, symbol: str) -> Market:
        market = self._load_markets(self.config.markets_ttl_s).get(symbol)
        if market is None and self._monotonic() - self._markets_at >= MARKETS_MIN_AGE_S:
            # listed since the last reload? (at most once a minute: exchangeInfo is heavy)
            market = self._load_markets(0.0).get(symbol)
        if market is None:
            raise ExchangeError(f"{symbol}: not a spot market on {self._client.label}")
        return market

    def _reference_price(self, symbol: str) -> float:
        """The price a market order's notional is checked at: the last close seen, else
        the ticker's."""
        last = self._last_close.get(symbol)
        if last is None:
            ticker = self._client.read("fetch_ticker", symbol, lambda c: c.fetch_ticker(symbol))
            last = num(ticker.get("last") or ticker.get("close"))
        return last

    def fetch_balances(self) -> dict[str, Balance]:
        raw = self._client.read("fetch_balances", None, lambda c: c.fetch_balance(), private=True)
        return to_balances(raw, self.config.quote)

    # --- orders (exchange/ccxt_orders.py) ----------------------------------------------------

    def create_order(self, request: OrderRequest) -> Order:
        return self._orders.create(request)

    def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        return self._orders.cancel(symbol, client_order_id)

    def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        return self._orders.fetch(symbol, client_order_id)

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        return self._orders.fetch_open(symbol)

    def close(self) -> None:
        self._client.close()
