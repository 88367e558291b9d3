"""Paper trading on a real exchange's public prices: `exchange.kind: paper`, `market: live`.

`LivePaperExchange` is an `ExchangePort` made of two parts:

- market data — markets (with the exchange's own trading rules), tickers, history
  start and candles — straight from a public exchange port (`CcxtExchange` built
  without keys: only public endpoints are ever called), so the universe, the
  trainers' history and the trader's candles are exactly what a live bot sees;
- orders and balances on the embedded `PaperExchange`, whose market is a
  `LiveMarket`: a market order fills at the close of the symbol's last closed
  candle of the bot's timeframe (the candle the trader decided on), with the
  paper exchange's fees and slippage, and its state persists in `state_path`
  like the paper exchange's always does.

The paper part is built on first use, from the exchange's markets: if the
exchange does not answer then, the call fails (`TransientExchangeError`) and the
trader retries at its next candle, as it does with a real exchange.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core.timeframes import timeframe_ms
from exchange.paper import PaperExchange
from exchange.port import ExchangePort
from exchange.types import Balance, Candle, ExchangeError, Market, Order, OrderRequest, Ticker

FloatArray = npt.NDArray[np.float64]


class LiveMarket:
    """A public exchange port seen as the paper exchange's market, on the bot's timeframe."""

    def __init__(self, public: ExchangePort, timeframe: str) -> None:
        self.public = public
        self.timeframe = timeframe
        self.base_ms = timeframe_ms(timeframe)

    def symbols(self) -> list[str]:
        return list(self.public.load_markets())

    def reference_price(self, symbol: str) -> float:
        ticker = self.public.fetch_tickers().get(symbol)
        if ticker is None or not ticker.last > 0:
            raise ExchangeError(f"{symbol}: no last price on {self.public.name}")
        return ticker.last

    def listed_ms(self, symbol: str) -> int:
        start = self.public.history_start_ms(symbol)
        if start is None:
            raise ExchangeError(f"{symbol}: {self.public.name} has no candles of it yet")
        return start

    def is_open(self, symbol: str, now_ms: int) -> bool:
        market = self.public.load_markets().get(symbol)
        return market is not None and market.active

    def tickers(self, now_ms: int) -> dict[str, Ticker]:
        return self.public.fetch_tickers()

    def _timeframe(self, timeframe: str | int) -> str:
        if isinstance(timeframe, str):
            return timeframe
        if timeframe != self.base_ms:
            raise ValueError(f"a live market serves {self.timeframe} or named timeframes only")
        return self.timeframe

    def ohlcv(self, symbol: str, timeframe: str | int, start_ms: int, end_ms: int) -> FloatArray:
        """Closed candles with open time in [start_ms, end_ms), paged from the exchange."""
        tf = self._timeframe(timeframe)
        step = timeframe_ms(tf)
        pages: list[Candle] = []
        cursor = int(start_ms)
        while cursor < end_ms:
            page = [
                row
                for row in self.public.fetch_ohlcv(symbol, tf, since_ms=cursor, limit=1000)
                if cursor <= row[0] < end_ms
            ]
            if not page:
                break
            pages += page
            cursor = int(page[-1][0]) + step
        return np.asarray(pages, dtype=np.float64).reshape(-1, 6)

    def candles(self, symbol: str, start_ms: int, end_ms: int) -> FloatArray:
        return self.ohlcv(symbol, self.timeframe, start_ms, end_ms)

    def last_closed(self, symbol: str, now_ms: int) -> FloatArray | None:
        rows = self.public.fetch_ohlcv(symbol, self.timeframe, limit=1)
        return np.asarray(rows[-1], dtype=np.float64) if rows else None


class LivePaperExchange:
    """`ExchangePort`: a public exchange's market data, fills on the paper exchange."""

    settle_window_s = 0.0  # orders are the paper exchange's: they exist once placed

    def __init__(
        self,
        public: ExchangePort,
        *,
        timeframe: str,
        now_ms: Callable[[], int],
        quote: str = "USDT",
        starting_balance: float = 10_000.0,
        fee_rate: float = 0.001,
        slippage_bps: float = 5.0,
        state_path: str | Path | None = None,
    ) -> None:
        self.public = public
        self.name = f"paper-{public.name}"
        self.market = LiveMarket(public, timeframe)
        self._build = lambda markets: PaperExchange(
            self.market,
            now_ms,
            quote=quote,
            starting_balance=starting_balance,
            fee_rate=fee_rate,
            slippage_bps=slippage_bps,
            state_path=state_path,
            markets=markets,
        )
        self._paper: PaperExchange | None = None
        self._lock = threading.Lock()

    def paper(self) -> PaperExchange:
        """The paper part, built on first use with the exchange's markets (their rules)."""
        with self._lock:
            if self._paper is None:
                self._paper = self._build(self.public.load_markets())
            return self._paper

    # --- market data: the exchange's --------------------------------------------------

    def load_markets(self) -> dict[str, Market]:
        markets = self.public.load_markets()
        if self._paper is not None:  # listed since the start: tradable on paper too
            self._paper.add_markets(markets)
        return markets

    def fetch_tickers(self) -> dict[str, Ticker]:
        return self.public.fetch_tickers()

    def history_start_ms(self, symbol: str) -> int | None:
        return self.public.history_start_ms(symbol)

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int = 1000
    ) -> list[Candle]:
        return self.public.fetch_ohlcv(symbol, timeframe, since_ms, limit)

    # --- orders and balances: the paper exchange's ----------------------------------------

    def create_order(self, request: OrderRequest) -> Order:
        return self.paper().create_order(request)

    def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        return self.paper().cancel_order(symbol, client_order_id)

    def fetch_order(self, symbol: str, client_order_id: str) -> Order | None:
        return self.paper().fetch_order(symbol, client_order_id)

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        return self.paper().fetch_open_orders(symbol)

    def fetch_balances(self) -> dict[str, Balance]:
        return self.paper().fetch_balances()

    def close(self) -> None:
        try:
            if self._paper is not None:
                self._paper.close()
        finally:
            self.public.close()
