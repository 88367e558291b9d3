"""The one interface the bot needs from an exchange.

`PaperExchange` (the embedded default) and `CcxtExchange` (real exchanges)
both implement it; actors only ever see this Protocol. Every method may raise
`ExchangeError` subclasses from `exchange.types`; none returns silently wrong data.
"""

from __future__ import annotations

from typing import Protocol

from exchange.types import Balance, Candle, Market, Order, OrderRequest, Ticker


class ExchangePort(Protocol):
    name: str  # "paper", "binance", ...

    def load_markets(self) -> dict[str, Market]:
        """Every spot market the exchange lists now, keyed by unified symbol."""
        ...

    def fetch_tickers(self) -> dict[str, Ticker]:
        """24 h tickers of every market, for ranking the universe by volume."""
        ...

    def history_start_ms(self, symbol: str) -> int | None:
        """Open time of the earliest candle the exchange has for `symbol`, or None."""
        ...

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int = 1000
    ) -> list[Candle]:
        """Up to `limit` *closed* candles with open time >= since_ms, oldest first.

        With since_ms None: the most recent `limit` closed candles.
        """
        ...

    def create_order(self, request: OrderRequest) -> Order:
        """Place an order carrying request.client_order_id.

        Sending the same client order id twice never creates two orders: the
        second call returns the first order (or raises OrderRejected naming the
        duplicate).
        """
        ...

    def cancel_order(self, symbol: str, client_order_id: str) -> Order: ...

    def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        """The order with this client id, or None if the exchange never saw it."""
        ...

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]: ...

    def fetch_balances(self) -> dict[str, Balance]: ...

    def close(self) -> None:
        """Release connections and flush any state the exchange keeps on disk."""
        ...
