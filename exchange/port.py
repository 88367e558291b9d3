"""The one interface the bot needs from an exchange.

`PaperExchange` (the embedded default) and `CcxtExchange` (real exchanges)
both implement it; actors only ever see this Protocol. Every method may raise
`ExchangeError` subclasses from `exchange.types`; none returns silently wrong data.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from exchange.types import Balance, Candle, Market, Order, OrderRequest, Ticker


class ExchangePort(Protocol):
    name: str  # "paper", "binance", ...
    # How long after a send an order may still appear on the exchange: a signed request is
    # accepted until its recvWindow has passed (Binance: recvWindow + 1 s). 0: at once.
    settle_window_s: float

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


class ExchangeRoles(NamedTuple):
    """One client per role, so that no role's requests wait behind another's: a history
    download or an order lookup never delays the candles (docs/exchanges.md). Real
    exchanges get three clients sharing one `exchange.gate.ServerGate`; the paper
    exchange, in-process, serves all three."""

    orders: ExchangePort  # the trader: orders, balances, reconciliation
    market_data: ExchangePort  # the market-data actor: the candles decided on
    downloads: ExchangePort  # coverage (universe, history starts) and trainers' downloads

    @classmethod
    def single(cls, exchange: ExchangePort) -> ExchangeRoles:
        return cls(orders=exchange, market_data=exchange, downloads=exchange)

    def distinct(self) -> list[ExchangePort]:
        """Each client once (to close them)."""
        seen: list[ExchangePort] = []
        for client in self:
            if not any(client is other for other in seen):
                seen.append(client)
        return seen
