"""The embedded default exchange: paper trading against a market of prices.

The market (`PaperMarket`) is the deterministic `SyntheticMarket`, stored candles
(`exchange.replay.ReplayMarket`, a backtest) or a real exchange's public prices
(`exchange.live.LiveMarket`).

Market orders fill at once at the close of the market's last closed candle, moved by
`slippage_bps` against the taker (buys higher, sells lower), and pay `fee_rate` of
the notional in the quote currency. Market orders only: the bot sends no other kind,
and a limit order is refused (`OrderRejected`), so no order ever rests open and
nothing is reserved (`used` is always 0).

With `state_path`, the whole state (balances, orders by client id, order counter)
is rewritten atomically after every change and loaded at construction, so a
restarted bot sees the orders and balances it had: replaying a client order id
returns the recorded order instead of filling twice.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from core.durable import write_atomically
from core.timeframes import timeframe_ms
from exchange.types import (
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
)

MIN_NOTIONAL = 5.0  # in quote units (a stablecoin's)
# Binance spot's minimum order values where the quote is not a stablecoin.
MIN_NOTIONAL_BY_QUOTE = {"BTC": 0.0001, "ETH": 0.001, "BNB": 0.01}
MAX_OHLCV_LIMIT = 1000
_STATE_VERSION = 1


class _Funds(msgspec.Struct):
    free: float


class _State(msgspec.Struct):
    """The file's layout. Files written when the paper exchange had resting limit orders
    carry `used` and `next_check_ms` too: ignored on reading (an open order in one is
    refused by `_load`)."""

    quote: str
    counter: int
    balances: dict[str, _Funds]
    orders: dict[str, Order]  # by client order id, in creation order
    version: int = _STATE_VERSION


def _snap(value: float, tolerance: float) -> float:
    """Round float dust (from adding and subtracting amounts) to exactly zero."""
    return 0.0 if abs(value) <= tolerance else value


class PaperMarket(Protocol):
    """What the paper exchange asks of its market (times in ms; candles (N, 6) float64)."""

    base_ms: int  # the market's own candle length: fills and limit checks use these candles

    def symbols(self) -> list[str]: ...

    def reference_price(self, symbol: str) -> float: ...

    def listed_ms(self, symbol: str) -> int: ...

    def is_open(self, symbol: str, now_ms: int) -> bool: ...

    def tickers(self, now_ms: int) -> dict[str, Ticker]: ...

    def candles(self, symbol: str, start_ms: int, end_ms: int) -> npt.NDArray[np.float64]: ...

    def ohlcv(
        self, symbol: str, timeframe: str | int, start_ms: int, end_ms: int
    ) -> npt.NDArray[np.float64]: ...

    def last_closed(self, symbol: str, now_ms: int) -> npt.NDArray[np.float64] | None: ...


def min_notional(quote: str) -> float:
    return MIN_NOTIONAL_BY_QUOTE.get(quote, MIN_NOTIONAL)


class PaperExchange:
    """`exchange.port.ExchangePort` over a `PaperMarket`, with simulated fills.

    `markets`: the trading rules (a real exchange's); by default they are derived
    from each symbol's price scale.
    """

    name = "paper"
    settle_window_s = 0.0  # in-process: an order exists once create_order returned

    def __init__(
        self,
        market: PaperMarket,
        now_ms: Callable[[], int],
        quote: str = "USDT",
        starting_balance: float = 10_000.0,
        fee_rate: float = 0.001,
        slippage_bps: float = 5.0,
        state_path: str | Path | None = None,
        markets: Mapping[str, Market] | None = None,
    ) -> None:
        if not 0.0 <= fee_rate < 1.0:
            raise ValueError(f"fee_rate {fee_rate} must be in [0, 1)")
        if not 0.0 <= slippage_bps < 10_000.0:
            raise ValueError(f"slippage_bps {slippage_bps} must be in [0, 10000)")
        if not starting_balance >= 0.0:
            raise ValueError(f"starting_balance {starting_balance} must be >= 0")
        self._market = market
        self._now = now_ms
        self.quote = quote
        self.fee_rate = float(fee_rate)
        self.slippage = float(slippage_bps) / 10_000.0
        self._path = Path(state_path) if state_path is not None else None
        self._lock = threading.RLock()
        self._markets = self._build_markets() if markets is None else self._of_quote(markets)
        if self._path is not None and self._path.exists():
            self._state = self._load(self._path)
        else:
            self._state = _State(
                quote=quote,
                counter=0,
                balances={quote: _Funds(free=float(starting_balance))},
                orders={},
            )
            self._save()

    # --- markets and data -------------------------------------------------

    def _of_quote(self, markets: Mapping[str, Market]) -> dict[str, Market]:
        return {s: m for s, m in markets.items() if m.quote == self.quote}

    def add_markets(self, markets: Mapping[str, Market]) -> None:
        """Trading rules of markets listed since: those of symbols already known stay."""
        with self._lock:
            for symbol, market in self._of_quote(markets).items():
                self._markets.setdefault(symbol, market)

    def _build_markets(self) -> dict[str, Market]:
        """Static market rules per symbol, from the market's price scale."""
        out: dict[str, Market] = {}
        minimum = min_notional(self.quote)
        for symbol in self._market.symbols():
            base, _, quote = symbol.partition("/")
            if quote != self.quote or not base:
                continue
            price = self._market.reference_price(symbol)
            # Amount step worth at most 1/50 of the minimum order (0.1 USDT), at most one unit.
            decimals = max(0, -math.floor(math.log10(minimum / 50 / price)))
            step = 10.0**-decimals
            out[symbol] = Market(
                symbol=symbol,
                base=base,
                quote=quote,
                active=False,  # set per call by load_markets
                spot=True,
                min_amount=step,
                min_notional=minimum,
                amount_step=step,
                price_step=10.0 ** (math.floor(math.log10(price)) - 6),
            )
        return out

    def _listed(self, symbol: str, now: int) -> bool:
        return symbol in self._markets and self._market.listed_ms(symbol) <= now

    def _require_listed(self, symbol: str, now: int) -> Market:
        if not self._listed(symbol, now):
            raise ExchangeError(f"unknown symbol {symbol!r} on the paper exchange")
        return self._markets[symbol]

    def load_markets(self) -> dict[str, Market]:
        now = self._now()
        return {
            symbol: msgspec.structs.replace(m, active=self._market.is_open(symbol, now))
            for symbol, m in self._markets.items()
            if self._market.listed_ms(symbol) <= now
        }

    def fetch_tickers(self) -> dict[str, Ticker]:
        tickers = self._market.tickers(self._now())
        return {s: t for s, t in tickers.items() if s in self._markets}

    def history_start_ms(self, symbol: str) -> int | None:
        if not self._listed(symbol, self._now()):
            return None
        return self._market.listed_ms(symbol)

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int = 1000
    ) -> list[Candle]:
        now = self._now()
        self._require_listed(symbol, now)
        try:
            tf = timeframe_ms(timeframe)
        except ValueError as e:
            raise ExchangeError(f"{symbol}: {e}") from e
        if tf % self._market.base_ms != 0:
            raise ExchangeError(f"{symbol}: timeframe {timeframe!r} is finer than the market's")
        if limit < 1:
            raise ExchangeError(f"{symbol}: ohlcv limit {limit} must be >= 1")
        limit = min(int(limit), MAX_OHLCV_LIMIT)
        end = (now // tf) * tf  # candles opening before this are closed
        if since_ms is None:
            start = end - limit * tf
        else:
            listed_bucket = (self._market.listed_ms(symbol) // tf) * tf
            start = max(-(-int(since_ms) // tf) * tf, listed_bucket)
        stop = min(end, start + limit * tf)
        if stop <= start:
            return []
        rows: list[Candle] = self._market.ohlcv(symbol, tf, start, stop).tolist()
        return rows

    # --- orders -----------------------------------------------------------

    def create_order(self, request: OrderRequest) -> Order:
        with self._lock:
            existing = self._state.orders.get(request.client_order_id)
            if existing is not None:
                if existing.symbol != request.symbol or existing.side != request.side:
                    raise OrderRejected(
                        f"{request.symbol}: duplicate client order id "
                        f"{request.client_order_id!r} already used by a "
                        f"{existing.side} order on {existing.symbol}"
                    )
                return existing
            order = self._place(request)
            self._state.orders[order.client_order_id] = order
            self._save()
            return order

    def _place(self, request: OrderRequest) -> Order:
        now = self._now()
        symbol = request.symbol
        if not self._listed(symbol, now):
            raise OrderRejected(f"unknown symbol {symbol!r} on the paper exchange")
        market = self._markets[symbol]
        if not self._market.is_open(symbol, now):
            raise OrderRejected(f"{symbol}: market is not active yet")
        if not request.client_order_id:
            raise OrderRejected(f"{symbol}: empty client order id")
        try:
            side = Side(request.side)
        except ValueError:
            raise OrderRejected(f"{symbol}: unknown side {request.side!r}") from None
        if request.kind != "market":
            raise OrderRejected(
                f"{symbol}: the paper exchange fills market orders only, not a "
                f"{request.kind!r} order"
            )
        if not (math.isfinite(request.amount) and request.amount > 0):
            raise OrderRejected(f"{symbol}: amount {request.amount} must be a positive number")
        amount = self._round_amount(request.amount, market.amount_step)
        if amount < market.min_amount:
            raise OrderRejected(
                f"{symbol}: amount {request.amount:.10g} {market.base} is below the "
                f"minimum amount {market.min_amount:.10g} {market.base}"
            )
        last = self._market.last_closed(symbol, now)
        if last is None:
            raise OrderRejected(f"{symbol}: no closed candle yet, no price to trade at")
        ref = float(last[4])
        price = ref * (1.0 + self.slippage) if side is Side.BUY else ref * (1.0 - self.slippage)
        notional = amount * price
        if notional < market.min_notional:
            raise OrderRejected(
                f"{symbol}: notional {notional:.8g} {self.quote} ({amount:.10g} {market.base} "
                f"at {price:.8g}) is below the minimum notional "
                f"{market.min_notional:g} {self.quote}"
            )
        if side is Side.BUY:
            need = notional * (1.0 + self.fee_rate)
            have = self._funds(self.quote).free
            asset = self.quote
        else:
            need = amount
            have = self._funds(market.base).free
            asset = market.base
        if need > have:
            raise OrderRejected(
                f"{symbol}: insufficient {asset} to {side} {amount:.10g} {market.base}: "
                f"needs {need:.10g} {asset}, available {have:.10g} {asset}"
            )

        self._state.counter += 1
        fee = self._settle(market, side, amount, price)
        return Order(
            symbol=symbol,
            side=side,
            client_order_id=request.client_order_id,
            exchange_order_id=f"paper-{self._state.counter}",
            status=OrderStatus.CLOSED,
            amount=amount,
            filled=amount,
            remaining=0.0,
            average_price=price,
            fee_quote=fee,
            created_ms=now,
            kind=request.kind,
            price=request.price,
        )

    @staticmethod
    def _round_amount(amount: float, step: float) -> float:
        """Round down to the step (like ccxt's amount_to_precision), as a clean decimal."""
        if step <= 0:
            return amount
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        return round(math.floor(amount / step + 1e-9) * step, decimals)

    def _funds(self, asset: str) -> _Funds:
        funds = self._state.balances.get(asset)
        if funds is None:
            funds = self._state.balances[asset] = _Funds(free=0.0)
        return funds

    def _dust(self, asset: str) -> float:
        """Amounts of `asset` this small are float residue, not holdings."""
        if asset == self.quote:
            return 1e-9
        for m in self._markets.values():
            if m.base == asset:
                return m.amount_step * 1e-6
        return 1e-12

    def _settle(self, market: Market, side: Side, amount: float, price: float) -> float:
        """Move the funds of a fill out of `free`; returns the fee (in quote)."""
        notional = amount * price
        fee = notional * self.fee_rate
        quote = self._funds(self.quote)
        base = self._funds(market.base)
        if side is Side.BUY:
            quote.free = _snap(quote.free - notional - fee, self._dust(self.quote))
            base.free = _snap(base.free + amount, self._dust(market.base))
        else:
            base.free = _snap(base.free - amount, self._dust(market.base))
            quote.free = _snap(quote.free + notional - fee, self._dust(self.quote))
        return fee

    def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Every paper order filled when it was placed: there is nothing left to cancel."""
        with self._lock:
            order = self._state.orders.get(client_order_id)
            if order is None or order.symbol != symbol:
                raise ExchangeError(
                    f"{symbol}: no order with client order id {client_order_id!r} to cancel"
                )
            return order

    def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        with self._lock:
            order = self._state.orders.get(client_order_id)
            return order if order is not None and order.symbol == symbol else None

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        with self._lock:
            return [
                o
                for o in self._state.orders.values()
                if o.status is OrderStatus.OPEN and (symbol is None or o.symbol == symbol)
            ]

    def fetch_balances(self) -> dict[str, Balance]:
        with self._lock:
            return {
                asset: Balance(asset=asset, free=f.free, used=0.0)
                for asset, f in self._state.balances.items()
                if asset == self.quote or f.free != 0.0
            }

    def close(self) -> None:
        with self._lock:
            self._save()

    # --- persistence ------------------------------------------------------

    def _save(self) -> None:
        if self._path is None:
            return
        path = self._path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, msgspec.json.encode(self._state))
        except OSError as e:
            raise ExchangeError(f"cannot write the paper exchange state to {path}: {e}") from e

    def _load(self, path: Path) -> _State:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ExchangeError(f"cannot read the paper exchange state {path}: {e}") from e
        try:
            state = msgspec.json.decode(data, type=_State)
        except msgspec.DecodeError as e:
            raise ExchangeError(f"corrupt paper exchange state file {path}: {e}") from e
        problems = []
        if state.version != _STATE_VERSION:
            problems.append(f"version {state.version}, expected {_STATE_VERSION}")
        if state.quote != self.quote:
            problems.append(f"quote {state.quote!r}, expected {self.quote!r}")
        for cid, order in state.orders.items():
            if cid != order.client_order_id:
                problems.append(f"order filed under {cid!r} has id {order.client_order_id!r}")
            if order.symbol not in self._markets:
                problems.append(f"order {cid!r} on unknown symbol {order.symbol!r}")
            if order.status is OrderStatus.OPEN:
                problems.append(
                    f"order {cid!r} is open (a resting limit order, which this version "
                    "no longer fills)"
                )
        if problems:
            raise ExchangeError(
                f"inconsistent paper exchange state file {path}: " + "; ".join(problems)
            )
        return state
