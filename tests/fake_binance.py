"""A Binance-compatible spot REST exchange on 127.0.0.1, for driving the real ccxt client.

`FakeBinance` serves the endpoints a spot bot uses, in Binance's own formats and
with Binance's own error codes and messages (ccxt maps errors by code and message,
so these must be the real ones):

    GET    /api/v3/time, /api/v3/exchangeInfo, /api/v3/klines, /api/v3/ticker/24hr
    POST   /api/v3/order                  (signed)  MARKET and LIMIT
    GET    /api/v3/order                  (signed)  by orderId or origClientOrderId
    DELETE /api/v3/order                  (signed)
    GET    /api/v3/openOrders, /api/v3/account, /api/v3/myTrades   (signed)

Signed endpoints check the X-MBX-APIKEY header (-2015), the HMAC-SHA256 signature
over query string + body (-1022), and timestamp/recvWindow against the server clock
(-1021). Orders check the exchangeInfo filters (-1013 Filter failure: LOT_SIZE /
PRICE_FILTER / NOTIONAL), the balance (-2010) and, like Binance, reject a client
order id only while an OPEN order carries it (-2010 Duplicate order sent.): a
filled market order's id can be sent again and fills again, which is why a blind
retry would double an order.

Prices come from `exchange.synthetic.SyntheticMarket` anchored at the fake's start,
so history is deep (BTC/USDT: 2000 days of 1m candles) and symbols have different
ages. Like Binance, klines include the candle still forming. The market runs on its
own clock when given one (`market_ms`, e.g. a bot's fast clock); signed requests
are always checked against the server clock (`now_ms`).

Faults on demand (each consumed by the next matching requests):
`fail(...)` (HTTP status + Binance code, optional Retry-After), `stall(...)` (hold a
reply beyond the client's timeout, after processing: stall-then-fill; or before
processing), `partial_fill_next(fraction)`, and `time_offset_ms` (clock skew). Not consumed:
`delay(...)`, network latency each way on every matching request (the kill test).
Every request is recorded in `requests`; unknown endpoints in `unknown`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from core.timeframes import MINUTE_MS, timeframe_ms
from exchange.synthetic import DEFAULT_SYMBOLS, SymbolSpec, SyntheticMarket

API_KEY = "fake-api-key-0123456789"
API_SECRET = "fake-api-secret-9876543210"

INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
MAX_KLINES = 1000
SIGNED = {"order", "openOrders", "account", "myTrades"}


class BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None):
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}


def _missing(parameter: str) -> BinanceError:
    return BinanceError(
        400, -1102, f"Mandatory parameter '{parameter}' was not sent, was empty/null, or malformed."
    )


@dataclass
class Fault:
    path: str  # "/api/v3/order"
    method: str | None  # None: any method
    times: int
    status: int = 0  # an HTTP error reply instead of the real one
    code: int | None = None
    msg: str = ""
    retry_after: int | None = None
    raw_body: str | None = None  # a non-JSON body (a proxy's 502 page)
    stall_s: float = 0.0
    before: bool = False  # stall before processing (else: process, then stall the reply)
    after: int = 0  # let this many matching requests through first
    # stall until this is set (instead of stall_s); `done` is set once the request was processed
    release: threading.Event | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class Delay:
    path: str
    method: str | None  # None: any method
    before_s: float  # before the request is processed
    after_s: float  # after, before the reply is sent


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    status: int = 200


@dataclass
class FakeOrder:
    order_id: int
    symbol_id: str
    client_id: str
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT
    orig_qty: Decimal
    price: Decimal  # limit price (0 for market)
    time_ms: int
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    quote_filled: Decimal = Decimal(0)
    fills: list[dict[str, Any]] = field(default_factory=list)


def _dec(value: float | Decimal) -> str:
    """A number as Binance writes it: a string with 8 decimals."""
    return f"{Decimal(str(value)):.8f}"


def _step_for(price: float, min_notional: float = 5.0) -> tuple[Decimal, Decimal]:
    """(amount step, price tick) for a symbol trading near `price`, Binance-like: a step
    worth at most 1/50 of the minimum order (as the paper exchange sizes it)."""
    decimals = max(0, min(8, -math.floor(math.log10(min_notional / 50 / price))))
    step = Decimal(1).scaleb(-decimals)
    tick_exp = max(-8, math.floor(math.log10(price)) - 6)
    return step, Decimal(1).scaleb(tick_exp)


class FakeBinance:
    def __init__(
        self,
        specs: Sequence[SymbolSpec] = DEFAULT_SYMBOLS,
        *,
        api_key: str = API_KEY,
        secret: str = API_SECRET,
        seed: int = 7,
        anchor_ms: int | None = None,
        balances: dict[str, float] | None = None,
        fee_rate: float = 0.001,
        min_notional: float = 5.0,
        now_ms: Callable[[], int] | None = None,
        market_ms: Callable[[], int] | None = None,
        market: Any = None,
    ) -> None:
        self.api_key = api_key
        self.secret = secret.encode()
        self._now = now_ms or (lambda: time.time_ns() // 1_000_000)
        # the market's own clock (candles, prices, order times), when it runs apart from the
        # server clock that signed requests are checked against (a bot on a fast clock)
        self._market_now = market_ms or self._now
        anchor = self._market_now() if anchor_ms is None else anchor_ms
        # `market`: any market the paper exchange trades on (a ReplayMarket of real candles)
        self.market = market or SyntheticMarket(
            anchor_ms=anchor - anchor % MINUTE_MS, seed=seed, specs=specs
        )
        self.fee_rate = Decimal(str(fee_rate))
        self.min_notional = Decimal(str(min_notional))
        self.time_offset_ms = 0  # server clock = real clock + this (skew injection)
        self.lock = threading.RLock()
        self.requests: list[Recorded] = []
        self.unknown: list[str] = []
        self.orders: list[FakeOrder] = []
        self.faults: list[Fault] = []
        self._partial: list[Decimal] = []
        self.delays: list[Delay] = []
        self._busy = 0  # requests being handled (delays included)
        self._delayed = 0  # of which inside a `delay` (on the wire)
        self._busy_cond = threading.Condition()
        self._trade_id = 0
        self.balances: dict[str, Decimal] = {
            a: Decimal(str(v)) for a, v in (balances or {"USDT": 10_000.0}).items()
        }
        self.locked: dict[str, Decimal] = {}
        self._ids: dict[str, str] = {}  # "BTCUSDT" -> "BTC/USDT"
        self._filters: dict[str, tuple[Decimal, Decimal]] = {}
        for symbol in self.market.symbols():
            base, _, quote = symbol.partition("/")
            self._ids[base + quote] = symbol
            self._filters[symbol] = _step_for(self.market.reference_price(symbol), min_notional)
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------

    def start(self, port: int = 0) -> FakeBinance:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-binance",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- fault injection -------------------------------------------------------------

    def fail(
        self,
        path: str,
        status: int,
        code: int | None = None,
        msg: str = "",
        *,
        method: str | None = None,
        times: int = 1,
        retry_after: int | None = None,
        raw_body: str | None = None,
        after: int = 0,
    ) -> None:
        """The next `times` matching requests (after `after` more) get this error instead of
        their reply."""
        with self.lock:
            self.faults.append(
                Fault(
                    path,
                    method,
                    times,
                    status,
                    code,
                    msg,
                    retry_after,
                    raw_body=raw_body,
                    after=after,
                )
            )

    def stall(
        self,
        path: str,
        seconds: float,
        *,
        method: str | None = None,
        times: int = 1,
        before: bool = False,
        release: threading.Event | None = None,
    ) -> Fault:
        """Hold the next matching replies `seconds` (beyond the client's timeout), or until
        `release` is set.

        After processing by default (stall-then-fill: the order exists, the reply
        never arrives in time); `before=True` holds the request before it is processed.
        The returned fault's `done` event is set once the request was processed.
        """
        fault = Fault(path, method, times, stall_s=seconds, before=before, release=release)
        with self.lock:
            self.faults.append(fault)
        return fault

    def partial_fill_next(self, fraction: float) -> None:
        """The next order fills only `fraction` of its quantity (market: the rest EXPIRES;
        limit: PARTIALLY_FILLED, the rest rests until `fill_open_orders`)."""
        with self.lock:
            self._partial.append(Decimal(str(fraction)))

    def delay(
        self, path: str, before_s: float, after_s: float = 0.0, *, method: str | None = None
    ) -> None:
        """Network latency on every matching request from now on (until `delays` is
        cleared): `before_s` on the way in (a request whose client died meanwhile still
        arrives and is processed), `after_s` on the way back (processed, reply not yet
        delivered)."""
        with self.lock:
            self.delays.append(Delay(path, method, before_s, after_s))

    def _delay_of(self, method: str, path: str) -> Delay | None:
        with self.lock:
            for delay in self.delays:
                if delay.path == path and delay.method in (None, method):
                    return delay
        return None

    def on_the_wire(self, timeout: float) -> bool:
        """Wait until a request is inside a `delay` (the moment to kill its client); False
        after `timeout` s."""
        with self._busy_cond:
            return self._busy_cond.wait_for(lambda: self._delayed > 0, timeout)

    def idle(self, timeout: float) -> bool:
        """Wait until no request is being handled (those on their way in included); False
        after `timeout` s."""
        with self._busy_cond:
            return self._busy_cond.wait_for(lambda: self._busy == 0, timeout)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path == path and fault.method in (None, method):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # --- inspection ----------------------------------------------------------------------

    def server_ms(self) -> int:
        return self._now() + self.time_offset_ms

    def market_ms(self) -> int:
        return self._market_now() + self.time_offset_ms

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return sum(r.method == method and r.path == path for r in self.requests)

    def orders_with_client_id(self, client_id: str) -> list[FakeOrder]:
        with self.lock:
            return [o for o in self.orders if o.client_id == client_id]

    def symbol_of(self, symbol_id: str) -> str:
        symbol = self._ids.get(symbol_id)
        if symbol is None or self.market.listed_ms(symbol) > self.market_ms():
            raise BinanceError(400, -1121, "Invalid symbol.")
        return symbol

    # --- request handling ---------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, body: str, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        with self._busy_cond:
            self._busy += 1
            self._busy_cond.notify_all()  # for whoever waits for requests to be in
        try:
            delay = self._delay_of(method, path)
            if delay is None:
                return self._handle(method, path, query, body, headers)
            with self._busy_cond:
                self._delayed += 1
                self._busy_cond.notify_all()
            try:
                self._stopping.wait(delay.before_s)  # on the way in: arrives even if the
                reply = self._handle(method, path, query, body, headers)  # client is gone
                self._stopping.wait(delay.after_s)  # processed; the reply travels back
                return reply
            finally:
                with self._busy_cond:
                    self._delayed -= 1
        finally:
            with self._busy_cond:
                self._busy -= 1
                self._busy_cond.notify_all()

    def _handle(
        self, method: str, path: str, query: str, body: str, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        record = Recorded(method, path, {k: v for k, v in params.items() if k != "signature"})
        with self.lock:
            self.requests.append(record)
        fault = self._take_fault(method, path)
        try:
            name = path.removeprefix("/api/v3/")
            if name in SIGNED:
                self._check_signed(query, body, params, headers)
            if fault is not None and fault.before and (fault.stall_s or fault.release):
                self._hold(fault)
                if name in SIGNED:  # it arrives at the matching engine late
                    self._check_timestamp(params)
            if fault is not None and fault.status:
                raise BinanceError(
                    fault.status,
                    fault.code if fault.code is not None else -1000,
                    fault.msg or "An unknown error occurred while processing the request.",
                    {"Retry-After": str(fault.retry_after)} if fault.retry_after else {},
                )
            status, payload = 200, self._route(method, name, params)
        except BinanceError as e:
            status, payload = e.status, {"code": e.code, "msg": e.msg}
            extra = e.headers
            if fault is not None and fault.raw_body is not None:
                payload = fault.raw_body
        else:
            extra = {}
        record.status = status
        if fault is not None:
            fault.done.set()
            if not fault.before and (fault.stall_s or fault.release):
                self._hold(fault)  # processed; the reply comes too late
        return status, payload, extra

    def _hold(self, fault: Fault) -> None:
        if fault.release is not None:
            while not (fault.release.is_set() or self._stopping.is_set()):
                fault.release.wait(0.05)
        else:
            self._stopping.wait(fault.stall_s)

    def _check_signed(
        self, query: str, body: str, params: dict[str, str], headers: dict[str, str]
    ) -> None:
        if headers.get("x-mbx-apikey") != self.api_key:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        total = query + body
        cut = total.rfind("&signature=")
        signature = params.get("signature")
        if cut < 0 or signature is None:
            raise _missing("signature")
        expected = hmac.new(self.secret, total[:cut].encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        self._check_timestamp(params)

    def _check_timestamp(self, params: dict[str, str]) -> None:
        try:
            stamp = int(params["timestamp"])
        except (KeyError, ValueError):
            raise _missing("timestamp") from None
        window = int(params.get("recvWindow", "5000"))
        if window > 60_000:
            raise BinanceError(400, -1131, "recvWindow must be less than 60000")
        server = self.server_ms()
        if stamp >= server + 1000:
            raise BinanceError(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if server - stamp > window:
            raise BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )

    def _route(self, method: str, name: str, p: dict[str, str]) -> Any:
        with self.lock:
            match method, name:
                case "GET", "time":
                    return {"serverTime": self.server_ms()}
                case "GET", "exchangeInfo":
                    return self._exchange_info()
                case "GET", "klines":
                    return self._klines(p)
                case "GET", "ticker/24hr":
                    return self._tickers(p)
                case "POST", "order":
                    return self._new_order(p)
                case "GET", "order":
                    return self._order_json(self._find(p))
                case "DELETE", "order":
                    return self._cancel(p)
                case "GET", "openOrders":
                    sid = p.get("symbol")
                    return [
                        self._order_json(o)
                        for o in self.orders
                        if o.status in ("NEW", "PARTIALLY_FILLED") and sid in (None, o.symbol_id)
                    ]
                case "GET", "account":
                    return self._account()
                case "GET", "myTrades":
                    return self._my_trades(p)
        raise BinanceError(404, -1000, f"fake binance: no endpoint {method} /api/v3/{name}")

    # --- market data ------------------------------------------------------------------

    def _exchange_info(self) -> dict[str, Any]:
        now = self.market_ms()
        symbols = []
        for symbol_id, symbol in self._ids.items():
            if self.market.listed_ms(symbol) > now:
                continue
            base, _, quote = symbol.partition("/")
            step, tick = self._filters[symbol]
            symbols.append(
                {
                    "symbol": symbol_id,
                    "status": "TRADING" if self.market.is_open(symbol, now) else "BREAK",
                    "baseAsset": base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT"],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": True,
                    "cancelReplaceAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": _dec(tick),
                            "maxPrice": "1000000.00000000",
                            "tickSize": _dec(tick),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": _dec(step),
                            "maxQty": "9000000.00000000",
                            "stepSize": _dec(step),
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": _dec(self.min_notional),
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "minQty": "0.00000000",
                            "maxQty": "9000000.00000000",
                            "stepSize": "0.00000000",
                        },
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": now,
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                }
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _klines(self, p: dict[str, str]) -> list[list[Any]]:
        symbol = self.symbol_of(p.get("symbol", ""))
        interval = p.get("interval", "")
        if interval not in INTERVALS:
            raise BinanceError(400, -1120, "Invalid interval.")
        # a market coarser than the interval (5 m replayed candles asked for 1 m: the bot's
        # history-start probe) answers with its own candles, like an exchange without finer data
        tf = max(timeframe_ms(interval), self.market.base_ms)
        limit = int(p.get("limit", "500"))
        if not 1 <= limit <= MAX_KLINES:
            raise BinanceError(400, -1100, "Illegal characters found in parameter 'limit'.")
        now = self.market_ms()
        end = (now // tf + 1) * tf  # includes the candle still forming, like Binance
        if "endTime" in p:
            end = min(end, (int(p["endTime"]) // tf + 1) * tf)
        listed = (self.market.listed_ms(symbol) // tf) * tf
        if "startTime" in p:
            start = max(-(-int(p["startTime"]) // tf) * tf, listed)
            end = min(end, start + limit * tf)
        else:
            start = max(end - limit * tf, listed)
        if end <= start:
            return []
        rows = self.market.ohlcv(symbol, tf, start, end)
        return [
            [
                int(r[0]),
                f"{r[1]:.8f}",
                f"{r[2]:.8f}",
                f"{r[3]:.8f}",
                f"{r[4]:.8f}",
                f"{r[5]:.8f}",
                int(r[0]) + tf - 1,
                f"{r[5] * r[4]:.8f}",
                100,
                f"{r[5] / 2:.8f}",
                f"{r[5] * r[4] / 2:.8f}",
                "0",
            ]
            for r in rows
        ]

    def last_price(self, symbol: str) -> Decimal:
        row = self.market.last_closed(symbol, self.market_ms())
        if row is None:
            raise BinanceError(400, -2010, "Market is closed.")
        return Decimal(f"{row[4]:.8f}")

    def _ticker(self, symbol_id: str, symbol: str, now: int) -> dict[str, Any]:
        is_open = self.market.is_open(symbol, now)
        last = float(self.last_price(symbol)) if is_open else 0.0
        quote_volume = self.market.quote_volume_24h(symbol, now) if is_open else 0.0
        return {
            "symbol": symbol_id,
            "priceChange": "0.00000000",
            "priceChangePercent": "0.000",
            "weightedAvgPrice": f"{last:.8f}",
            "prevClosePrice": f"{last:.8f}",
            "lastPrice": f"{last:.8f}",
            "lastQty": "1.00000000",
            "bidPrice": f"{last:.8f}",
            "bidQty": "1.00000000",
            "askPrice": f"{last:.8f}",
            "askQty": "1.00000000",
            "openPrice": f"{last:.8f}",
            "highPrice": f"{last:.8f}",
            "lowPrice": f"{last:.8f}",
            "volume": f"{quote_volume / last if last else 0.0:.8f}",
            "quoteVolume": f"{quote_volume:.8f}",
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": 1,
            "lastId": 1000,
            "count": 1000,
        }

    def _tickers(self, p: dict[str, str]) -> Any:
        now = self.market_ms()
        if "symbol" in p:
            return self._ticker(p["symbol"], self.symbol_of(p["symbol"]), now)
        return [
            self._ticker(sid, symbol, now)
            for sid, symbol in self._ids.items()
            if self.market.listed_ms(symbol) <= now
        ]

    # --- orders ------------------------------------------------------------------------

    def _new_order(self, p: dict[str, str]) -> dict[str, Any]:
        symbol_id = p.get("symbol", "")
        symbol = self.symbol_of(symbol_id)
        base, _, quote = symbol.partition("/")
        side, kind = p.get("side", ""), p.get("type", "")
        if side not in ("BUY", "SELL"):
            raise BinanceError(400, -1117, "Invalid side.")
        if kind not in ("MARKET", "LIMIT"):
            raise BinanceError(400, -1116, "Invalid orderType.")
        if not self.market.is_open(symbol, self.market_ms()):
            raise BinanceError(400, -2010, "Market is closed.")
        if "quantity" not in p:
            raise _missing("quantity")
        qty = Decimal(p["quantity"])
        step, tick = self._filters[symbol]
        if qty < step or qty % step != 0:
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        last = self.last_price(symbol)
        price = Decimal(0)
        if kind == "LIMIT":
            price = Decimal(p.get("price", "0"))
            if price < tick or price % tick != 0:
                raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
            if "timeInForce" not in p:
                raise _missing("timeInForce")
        check_price = last if kind == "MARKET" else price
        if qty * check_price < self.min_notional:
            raise BinanceError(400, -1013, "Filter failure: NOTIONAL")
        client_id = p.get("newClientOrderId") or f"fake-{len(self.orders) + 1}"
        if any(
            o.client_id == client_id and o.status in ("NEW", "PARTIALLY_FILLED")
            for o in self.orders
        ):
            raise BinanceError(400, -2010, "Duplicate order sent.")
        # funds: buys need quote at the (limit or last) price, sells need the base
        need_asset, need = (quote, qty * check_price) if side == "BUY" else (base, qty)
        if self.balances.get(need_asset, Decimal(0)) < need:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        order = FakeOrder(
            order_id=len(self.orders) + 1,
            symbol_id=symbol_id,
            client_id=client_id,
            side=side,
            type=kind,
            orig_qty=qty,
            price=price,
            time_ms=self.market_ms(),
        )
        self.orders.append(order)
        fraction = self._partial.pop(0) if self._partial else Decimal(1)
        marketable = kind == "MARKET" or (price >= last if side == "BUY" else price <= last)
        if marketable:
            fill_qty = (qty * fraction // step) * step
            self._fill(order, fill_qty, last)
            if order.executed < qty:
                order.status = "EXPIRED" if kind == "MARKET" else "PARTIALLY_FILLED"
        if order.status in ("NEW", "PARTIALLY_FILLED"):
            self._lock_funds(order)
        return self._order_json(order, full=True)

    def _fill(self, order: FakeOrder, qty: Decimal, price: Decimal) -> None:
        if qty <= 0:
            return
        symbol = self._ids[order.symbol_id]
        base, _, quote = symbol.partition("/")
        cost = qty * price
        if order.side == "BUY":
            fee, fee_asset = qty * self.fee_rate, base
            self._add(quote, -cost)
            self._add(base, qty - fee)
        else:
            fee, fee_asset = cost * self.fee_rate, quote
            self._add(base, -qty)
            self._add(quote, cost - fee)
        self._trade_id += 1
        order.fills.append(
            {
                "price": _dec(price),
                "qty": _dec(qty),
                "commission": f"{fee:.8f}",
                "commissionAsset": fee_asset,
                "tradeId": self._trade_id,
                "time": self.market_ms(),
            }
        )
        order.executed += qty
        order.quote_filled += cost
        order.status = "FILLED" if order.executed >= order.orig_qty else "PARTIALLY_FILLED"

    def _add(self, asset: str, amount: Decimal) -> None:
        self.balances[asset] = self.balances.get(asset, Decimal(0)) + amount

    def _lock_funds(self, order: FakeOrder, sign: int = 1) -> None:
        base, _, quote = self._ids[order.symbol_id].partition("/")
        rest = order.orig_qty - order.executed
        asset, amount = (quote, rest * order.price) if order.side == "BUY" else (base, rest)
        self._add(asset, -sign * amount)
        self.locked[asset] = self.locked.get(asset, Decimal(0)) + sign * amount

    def fill_open_orders(self) -> None:
        """Fill the rest of every open limit order at its limit price (the market came to it)."""
        with self.lock:
            for order in self.orders:
                if order.status in ("NEW", "PARTIALLY_FILLED"):
                    self._lock_funds(order, sign=-1)
                    self._fill(order, order.orig_qty - order.executed, order.price)

    def _find(self, p: dict[str, str]) -> FakeOrder:
        symbol_id = p.get("symbol", "")
        self.symbol_of(symbol_id)
        for order in reversed(self.orders):  # the newest order with that client id
            if order.symbol_id != symbol_id:
                continue
            if "orderId" in p and str(order.order_id) == p["orderId"]:
                return order
            if "origClientOrderId" in p and order.client_id == p["origClientOrderId"]:
                return order
        raise BinanceError(400, -2013, "Order does not exist.")

    def _cancel(self, p: dict[str, str]) -> dict[str, Any]:
        try:
            order = self._find(p)
        except BinanceError:
            raise BinanceError(400, -2011, "Unknown order sent.") from None
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceError(400, -2011, "Unknown order sent.")
        self._lock_funds(order, sign=-1)
        order.status = "CANCELED"
        return self._order_json(order)

    def _order_json(self, o: FakeOrder, full: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "symbol": o.symbol_id,
            "orderId": o.order_id,
            "orderListId": -1,
            "clientOrderId": o.client_id,
            "price": _dec(o.price),
            "origQty": _dec(o.orig_qty),
            "executedQty": _dec(o.executed),
            "cummulativeQuoteQty": _dec(o.quote_filled),
            "status": o.status,
            "timeInForce": "GTC",
            "type": o.type,
            "side": o.side,
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": o.time_ms,
            "updateTime": o.time_ms,
            "isWorking": True,
            "workingTime": o.time_ms,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        if full:
            out["transactTime"] = o.time_ms
            out["fills"] = [{k: v for k, v in f.items() if k != "time"} for f in o.fills]
        return out

    def _account(self) -> dict[str, Any]:
        assets = sorted(set(self.balances) | set(self.locked))
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "canTrade": True,
            "canWithdraw": False,
            "canDeposit": False,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.server_ms(),
            "accountType": "SPOT",
            "balances": [
                {
                    "asset": a,
                    "free": _dec(self.balances.get(a, Decimal(0))),
                    "locked": _dec(self.locked.get(a, Decimal(0))),
                }
                for a in assets
            ],
            "permissions": ["SPOT"],
            "uid": 1,
        }

    def _my_trades(self, p: dict[str, str]) -> list[dict[str, Any]]:
        symbol_id = p.get("symbol", "")
        self.symbol_of(symbol_id)
        out = []
        for order in self.orders:
            if order.symbol_id != symbol_id:
                continue
            if "orderId" in p and str(order.order_id) != p["orderId"]:
                continue
            for f in order.fills:
                out.append(
                    {
                        "symbol": symbol_id,
                        "id": f["tradeId"],
                        "orderId": order.order_id,
                        "orderListId": -1,
                        "price": f["price"],
                        "qty": f["qty"],
                        "quoteQty": _dec(Decimal(f["price"]) * Decimal(f["qty"])),
                        "commission": f["commission"],
                        "commissionAsset": f["commissionAsset"],
                        "time": f["time"],
                        "isBuyer": order.side == "BUY",
                        "isMaker": False,
                        "isBestMatch": True,
                    }
                )
        return out


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client killed mid-request
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeBinance
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: with Nagle's algorithm a kept-alive client's
    # delayed ACK holds the body ~40 ms, on every request
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        headers = {k.lower(): v for k, v in self.headers.items()}
        if not parts.path.startswith("/api/v3/"):
            with self.fake.lock:
                self.fake.unknown.append(f"{method} {parts.path}")
            extra: dict[str, str] = {}
            status, payload = 404, "<html><body>404 Not Found</body></html>"
        else:
            status, payload, extra = self.fake.handle(
                method, parts.path, parts.query, body, headers
            )
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        try:
            self.send_response(status)
            ctype = "text/html" if isinstance(payload, str) else "application/json"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout we injected)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")


def main(argv: list[str] | None = None) -> None:
    """Serve the fake until Ctrl-C, to try the bot against it by hand (docs/exchanges.md)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.fake_binance")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    fake = FakeBinance().start(args.port)
    print(f"fake Binance spot on {fake.url}", flush=True)
    print(f"export TRADEACTORS_API_KEY={API_KEY} TRADEACTORS_API_SECRET={API_SECRET}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.close()


if __name__ == "__main__":
    main()
