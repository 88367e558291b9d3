"""ccxt's unified structures (dicts) turned into our types (`exchange.types`).

Pure functions: no request, no clock. A missing or unreadable number reads as 0
(ccxt leaves fields None when the exchange does not send them); a reply that does not
describe what it should is the caller's to reject.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import ccxt

from exchange.types import Balance, Candle, Market, Order, OrderRequest, OrderStatus, Side, Ticker

_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.CLOSED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.CANCELED,  # a market order that could not fill completely
    "rejected": OrderStatus.REJECTED,
}


def num(value: Any) -> float:
    """A finite float, or 0.0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def step(precision: Any, mode: int) -> float:
    """A ccxt precision as a step size (TICK_SIZE: already one; DECIMAL_PLACES: 10**-p)."""
    if precision is None:
        return 0.0
    if mode == ccxt.DECIMAL_PLACES:
        return float(10.0 ** -float(precision))
    if mode == ccxt.TICK_SIZE:
        return num(precision)
    return 0.0  # significant digits: no fixed step


def to_markets(raw: Mapping[str, Any], precision_mode: int) -> dict[str, Market]:
    """The spot markets of `load_markets`' answer."""
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
            min_amount=num((limits.get("amount") or {}).get("min")),
            min_notional=num((limits.get("cost") or {}).get("min")),
            amount_step=step(precision.get("amount"), precision_mode),
            price_step=step(precision.get("price"), precision_mode),
        )
    return markets


def to_tickers(raw: Mapping[str, Any], markets: Mapping[str, Market]) -> dict[str, Ticker]:
    """The tickers of known markets, with the 24 h volume in quote units."""
    tickers: dict[str, Ticker] = {}
    for symbol, t in raw.items():
        if symbol not in markets:
            continue
        last = num(t.get("last") or t.get("close"))
        volume = t.get("quoteVolume")
        if volume is None:
            volume = num(t.get("baseVolume")) * last
        tickers[symbol] = Ticker(symbol=symbol, last=last, quote_volume=num(volume))
    return tickers


def closed_candles(rows: list[Any], timeframe_ms: int, cutoff_ms: int) -> list[Candle]:
    """The rows that had closed by `cutoff_ms`, as floats. Raises TypeError, ValueError
    or IndexError on a row that is no OHLCV row."""
    return [[float(x) for x in row[:6]] for row in rows if int(row[0]) + timeframe_ms <= cutoff_ms]


def to_balances(raw: Mapping[str, Any], quote: str) -> dict[str, Balance]:
    """Every asset held (free or used), and the quote asset always."""
    free, used = raw.get("free") or {}, raw.get("used") or {}
    out: dict[str, Balance] = {}
    for asset in sorted(set(free) | set(used)):
        f, u = num(free.get(asset)), num(used.get(asset))
        if asset == quote or f or u:
            out[asset] = Balance(asset=asset, free=f, used=u)
    return out


def order_symbol(raw: Mapping[str, Any], request: OrderRequest | None) -> str:
    return str(raw.get("symbol") or (request.symbol if request else ""))


def order_fees(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fees an order reply carries (none for a looked-up order: see `trade_fees`)."""
    return list(raw.get("fees") or ([raw["fee"]] if raw.get("fee") else []))


def trade_fees(trades: list[Any], symbol: str) -> list[dict[str, Any]]:
    """The fees of an order's trades; a fee in the base asset is priced at its trade."""
    base, _, quote = symbol.partition("/")
    fees: list[dict[str, Any]] = []
    for trade in trades:
        fee = dict(trade.get("fee") or {})
        if fee.get("currency") == base:
            fee = {"currency": quote, "cost": num(fee.get("cost")) * num(trade.get("price"))}
        if fee:
            fees.append(fee)
    return fees


def to_order(
    raw: Mapping[str, Any],
    request: OrderRequest | None,
    fees: list[dict[str, Any]],
    now_ms: int,
) -> Order:
    """An order reply as an `Order`; `request` fills what the reply leaves out, `now_ms`
    stands in for a missing timestamp."""
    symbol = order_symbol(raw, request)
    base, _, quote = symbol.partition("/")
    amount = num(raw.get("amount"))
    filled = num(raw.get("filled"))
    remaining = raw.get("remaining")
    average = raw.get("average")
    fee_quote = 0.0
    for fee in fees:
        cost, currency = num(fee.get("cost")), fee.get("currency")
        if currency == quote:
            fee_quote += cost
        elif currency == base:
            fee_quote += cost * num(average)
        # a fee in a third asset (BNB) is not converted: it is not paid in this pair
    price = raw.get("price")
    return Order(
        symbol=symbol,
        side=Side(raw.get("side") or (request.side if request else "buy")),
        client_order_id=str(
            raw.get("clientOrderId") or (request.client_order_id if request else "")
        ),
        exchange_order_id=str(raw.get("id") or ""),
        status=_STATUS.get(str(raw.get("status")), OrderStatus.OPEN),
        amount=amount,
        filled=filled,
        remaining=num(remaining) if remaining is not None else max(0.0, amount - filled),
        average_price=float(average) if average else None,
        fee_quote=fee_quote,
        created_ms=int(raw.get("timestamp") or now_ms),
        kind=str(raw.get("type") or (request.kind if request else "market")).lower(),
        price=float(price) if price else None,
    )
