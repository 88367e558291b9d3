"""Plain data that crosses the exchange port: markets, tickers, orders, balances.

Every type is a frozen msgspec Struct, so it can be sent between actors and
encoded on the admin wire without conversion. Times are epoch milliseconds,
as ccxt gives them.
"""

from __future__ import annotations

import enum

import msgspec

# One OHLCV row as ccxt returns it: [time_ms, open, high, low, close, volume].
Candle = list[float]


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # fully filled
    CANCELED = "canceled"
    REJECTED = "rejected"


class Market(msgspec.Struct, frozen=True):
    symbol: str  # "BTC/USDT"
    base: str
    quote: str
    active: bool
    spot: bool = True
    min_amount: float = 0.0  # in base units
    min_notional: float = 0.0  # in quote units
    amount_step: float = 0.0  # 0 = no rounding
    price_step: float = 0.0


class Ticker(msgspec.Struct, frozen=True):
    symbol: str
    last: float
    quote_volume: float  # 24 h volume in quote units


class OrderRequest(msgspec.Struct, frozen=True):
    symbol: str
    side: Side
    amount: float  # base units
    client_order_id: str
    kind: str = "market"  # "market" | "limit"; the bot sends market orders, paper refuses limit
    price: float | None = None  # limit price; reference price for market orders


class Order(msgspec.Struct, frozen=True):
    symbol: str
    side: Side
    client_order_id: str
    exchange_order_id: str
    status: OrderStatus
    amount: float
    filled: float
    remaining: float
    average_price: float | None
    fee_quote: float  # fee paid, in quote units
    created_ms: int
    kind: str = "market"
    price: float | None = None
    reason: str = ""  # why it was rejected, when it was


class Balance(msgspec.Struct, frozen=True):
    asset: str
    free: float
    used: float

    @property
    def total(self) -> float:
        return self.free + self.used


class ExchangeError(Exception):
    """Base of every error the port raises; the message names the symbol and the problem."""


class TransientExchangeError(ExchangeError):
    """Timeouts, rate limits, maintenance: safe to retry a read or a cancel later."""


class OrderRejected(ExchangeError):
    """The exchange refused an order (insufficient funds, below minimum, bad request)."""


class AuthenticationFailed(ExchangeError):
    """Keys missing, wrong or without permission: trading must stop."""
