"""Order placement through ccxt: checks before sending, sends that never double an
order, cancels and lookups by client order id.

Amounts and prices go through amount_to_precision / price_to_precision, and the
minimum amount and minimum notional are checked before sending (ccxt sends an order
below the minimum notional as is). Market orders are sent with a quantity, never a
quote amount. Partial fills are read from filled/remaining.

`create` is never retried blindly: after a send whose outcome is unknown (timeout,
5xx, an unreadable reply) it waits until the request's recvWindow has passed (so the
lost request can no longer be accepted), looks the order up by its client order id,
and sends again only if the exchange does not have it, at most `max_sends` times.
InsufficientFunds, InvalidOrder, BadRequest (and any other definite refusal):
`OrderRejected`, logged with the symbol, never retried.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import ccxt

from exchange.ccxt_client import CcxtClient
from exchange.ccxt_mapping import num, order_fees, order_symbol, to_order, trade_fees
from exchange.retry import Call, GaveUp
from exchange.types import (
    AuthenticationFailed,
    Balance,
    ExchangeError,
    Market,
    Order,
    OrderRejected,
    OrderRequest,
    Side,
    TransientExchangeError,
)

log = logging.getLogger("tradeactors.exchange")

_SELL_TOLERANCE = 0.01  # sell what is free when it is at most 1 % short (fees taken in base)


class _UnreadableReply(Exception):
    """An order reply that does not describe an order: its outcome is unknown."""


class _OutcomeUnknown(Exception):
    """A send that may or may not have placed the order."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class CcxtOrders:
    """The order half of `CcxtExchange`. It asks the exchange for what orders depend
    on: the market's rules, the free balances and a reference price."""

    def __init__(
        self,
        client: CcxtClient,
        *,
        market: Callable[[str], Market],
        balances: Callable[[], dict[str, Balance]],
        reference_price: Callable[[str], float],
        now_ms: Callable[[], int],
        monotonic: Callable[[], float],
    ) -> None:
        self._client = client
        self._market = market
        self._balances = balances
        self._reference_price = reference_price
        self._now_ms = now_ms
        self._monotonic = monotonic

    def create(self, request: OrderRequest) -> Order:
        client = self._client
        client.check_auth()
        symbol, coid = request.symbol, request.client_order_id
        market = self._market(symbol)
        if not market.active:
            raise self._rejected(symbol, coid, "market is not trading now")
        if not coid:
            raise self._rejected(symbol, coid, "empty client order id")
        if request.kind not in ("market", "limit"):
            raise self._rejected(symbol, coid, f"unknown order kind {request.kind!r}")
        side = Side(request.side)
        amount = self._sellable(market, side, float(request.amount), coid)
        amount, price = self._checked(market, request, amount)
        max_sends = client.config.max_sends
        window_s = client.config.recv_window_ms / 1000.0 + 1.0  # + Binance's 1 s ahead margin
        sent_at = self._monotonic()
        unknown: BaseException | None = None  # why the last send's outcome is unknown

        def mark_sent() -> None:  # also when a send is repeated after a clock resync
            nonlocal sent_at
            sent_at = self._monotonic()

        def attempt(call: Call) -> Order:
            if unknown is not None:  # did the last send land after all?
                found = self._look_up(unknown, symbol, coid, call)
                if found is not None:
                    return found
                if call.retries >= max_sends:
                    raise TransientExchangeError(
                        f"{symbol}: order {coid} not placed after {call.retries} sends "
                        f"(last: {client.clean(unknown)}); the exchange does not have it"
                    )
                log.warning(
                    "%s: order %s is not on the exchange after %s; sending it again (%d/%d)",
                    symbol,
                    coid,
                    type(unknown).__name__,
                    call.retries + 1,
                    max_sends,
                )
            return self._send(request, side, amount, price, call, mark_sent)

        def on_retry(exc: BaseException, retry: int, wait: float) -> None:
            nonlocal unknown
            unknown = _cause(exc)
            log.warning(
                "%s: order %s outcome unknown (%s); looking it up by client order id in %.1f s",
                symbol,
                coid,
                client.clean(unknown),
                wait,
            )

        def give_up(exc: BaseException, stop: GaveUp) -> Exception:
            return TransientExchangeError(
                f"{symbol}: order {coid} outcome unknown ({client.clean(_cause(exc))}) and a "
                f"lookup would wait {stop.wait_s:.0f} s ({stop.why}); look it up later by its "
                "client order id"
            )

        return client.retrier.run(
            attempt,
            retry_on=_OutcomeUnknown,
            on_retry=on_retry,
            give_up=give_up,
            retries=max_sends,  # the attempt after the last send only looks the order up
            wait_at_least=lambda: sent_at + window_s - self._monotonic(),
        )

    def _send(
        self,
        request: OrderRequest,
        side: Side,
        amount: float,
        price: float | None,
        call: Call,
        mark_sent: Callable[[], None],
    ) -> Order:
        """One send: the order, `OrderRejected` for a definite refusal, or `_OutcomeUnknown`
        when it may have been placed. `mark_sent()` runs as each request leaves."""
        client = self._client
        symbol, coid = request.symbol, request.client_order_id
        params = {"clientOrderId": coid}  # ccxt sends it as Binance's newClientOrderId

        def send(c: Any) -> Any:
            mark_sent()
            return c.create_order(symbol, request.kind, side.value, amount, price, dict(params))

        try:
            raw = client.request("create_order", symbol, send, call)
            if not isinstance(raw, dict) or not raw.get("id"):
                raise _UnreadableReply(f"{client.label} sent an order reply without an id")
            return self._order(raw, request)
        except ExchangeError:
            raise  # ours: not sent during a ban, clock skew after a resync, ...
        except ccxt.AuthenticationError as exc:
            raise client.auth_error(exc) from None
        except ccxt.InvalidOrder as exc:
            if call.retries and "Duplicate order" in str(exc):
                found = self._fetch(symbol, coid, call)  # our earlier send did arrive
                if found is not None:
                    return found
            raise self._rejected(symbol, coid, client.clean(exc)) from None
        except Exception as exc:
            if isinstance(exc, ccxt.BaseError) and not isinstance(exc, ccxt.OperationFailed):
                # InsufficientFunds, BadRequest, MarketClosed, ...: refused, not placed
                raise self._rejected(symbol, coid, client.clean(exc)) from None
            # timeout, 5xx, a reply ccxt could not read: look it up, do not resend blindly
            raise _OutcomeUnknown(exc) from exc

    def _look_up(self, exc: BaseException, symbol: str, coid: str, call: Call) -> Order | None:
        """After a send whose outcome is unknown, once its recvWindow has passed (the
        exchange can no longer accept it): the order by its client id, or None."""
        try:
            found = self._fetch(symbol, coid, call)
        except AuthenticationFailed:
            raise
        except ExchangeError as lookup:
            raise TransientExchangeError(
                f"{symbol}: order {coid} outcome unknown ({self._client.clean(exc)}) and the "
                f"lookup failed ({lookup}); look it up later by its client order id"
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
            free = self._balances().get(market.base)
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
        api = self._client.api
        with self._client.lock:
            try:
                rounded = float(api.amount_to_precision(symbol, amount))
            except ccxt.InvalidOrder:  # rounds to nothing
                rounded = 0.0
            try:
                price = (
                    float(api.price_to_precision(symbol, request.price))
                    if request.kind == "limit" and request.price is not None
                    else None
                )
            except ccxt.BaseError as exc:
                raise self._rejected(symbol, coid, self._client.clean(exc)) from None
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

    @staticmethod
    def _rejected(symbol: str, coid: str, why: str) -> OrderRejected:
        log.warning("%s: order %s rejected: %s", symbol, coid, why)
        return OrderRejected(f"{symbol}: order {coid} rejected: {why}")

    def cancel(self, symbol: str, client_order_id: str) -> Order:
        self._client.check_auth()
        try:
            raw = self._client.read(
                "cancel_order",
                symbol,
                lambda c: c.cancel_order(None, symbol, self._by_client_id(client_order_id)),
                private=True,
            )
        except ExchangeError as exc:
            if isinstance(exc, AuthenticationFailed | TransientExchangeError):
                raise
            # unknown to cancel: already filled or canceled (maybe by an earlier try)?
            found = self.fetch(symbol, client_order_id)
            if found is None:
                raise ExchangeError(
                    f"{symbol}: no order with client order id {client_order_id!r} to cancel"
                ) from None
            return found
        return self._order(raw)

    def _by_client_id(self, client_order_id: str) -> dict[str, str]:
        key = (
            "origClientOrderId"
            if self._client.config.exchange_id.startswith("binance")
            else "clientOrderId"
        )
        return {key: client_order_id}

    def fetch(self, symbol: str, client_order_id: str) -> Order | None:
        return self._fetch(symbol, client_order_id, None)

    def _fetch(self, symbol: str, client_order_id: str, within: Call | None) -> Order | None:
        """The order, or None; `within` a call whose deadline the lookup shares."""
        self._client.check_auth()

        def get(c: Any) -> Any:
            try:
                return c.fetch_order(None, symbol, self._by_client_id(client_order_id))
            except ccxt.OrderNotFound:
                return None

        raw = self._client.read("fetch_order", symbol, get, private=True, within=within)
        return None if raw is None else self._order(raw)

    def fetch_open(self, symbol: str | None = None) -> list[Order]:
        raw = self._client.read(
            "fetch_open_orders", symbol, lambda c: c.fetch_open_orders(symbol), private=True
        )
        return [self._order(o, with_trades=False) for o in raw]

    def _order(
        self, raw: dict[str, Any], request: OrderRequest | None = None, with_trades: bool = True
    ) -> Order:
        if not isinstance(raw, dict) or not raw.get("id"):
            raise ExchangeError(f"{self._client.label} sent an unreadable order: {str(raw)[:200]}")
        fees = order_fees(raw)
        if num(raw.get("filled")) > 0 and not fees and with_trades:
            fees = self._fees_from_trades(order_symbol(raw, request), str(raw["id"]))
        return to_order(raw, request, fees, self._now_ms())

    def _fees_from_trades(self, symbol: str, order_id: str) -> list[dict[str, Any]]:
        """A looked-up order carries no fills: its fees come from its trades."""
        try:
            trades = self._client.read(
                "fetch_my_trades",
                symbol,
                lambda c: c.fetch_my_trades(symbol, params={"orderId": order_id}),
                private=True,
            )
        except ExchangeError as exc:
            log.warning("%s: fees of order %s unknown: %s", symbol, order_id, exc)
            return []
        return trade_fees(trades, symbol)


def _cause(exc: BaseException) -> BaseException:
    return exc.cause if isinstance(exc, _OutcomeUnknown) else exc
