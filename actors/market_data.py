"""MarketDataActor: the closed candles every decision is made on, fetched off the trader's mailbox.

Accepts:
- `FetchCandles` (trader, at each candle close and when a symbol becomes
  tradable): fetch the closed-candle window of every asked symbol, concurrently
  (`exchange.candle_feed.CandleFeed`: at most `max_in_flight` requests at once,
  the whole fetch bounded by `deadline_s`), and reply one `CandlesClosed` to
  `reply_to`, naming every symbol it could not serve and why.

It has an exchange client of its own (the market-data role), so a history
download or an order lookup never delays the candles, and the trader never waits
on a REST call for them: it decides when the reply arrives. Live, paper and
simulation all go through here, so they share one decision path.

A fetch for a close already served answers from the windows it keeps (no
request); windows of symbols no longer asked for at a candle close are dropped.
It always answers, even when it fails on a bug (every symbol missing, then it
dies and is restarted): the trader's tick waits for the answer.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import pykka

from actors.base import BaseActor, Runtime, Topic
from actors.clock import Clock, Mailbox
from actors.messages import CandlesClosed, FetchCandles
from exchange.candle_feed import CandleFeed
from exchange.port import ExchangePort


class MarketDataActor(BaseActor):
    def __init__(
        self,
        *,
        clock: Clock,
        exchange: ExchangePort,
        timeframe: str,
        bars: int,
        max_in_flight: int = 1,
        deadline_s: float | None = None,
        supervisor: Mailbox | None = None,
        events: Topic | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        super().__init__("market_data", clock, supervisor, events, runtime)
        self.feed = CandleFeed(
            exchange, timeframe, bars, max_in_flight=max_in_flight, deadline_s=deadline_s
        )

    def stopped(self) -> None:
        self.feed.close()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.feed.close()
        super().on_failure(exception_type, exception_value, traceback)

    def receive(self, message: Any) -> Any:
        match message:
            case FetchCandles():
                self._fetch(message)
            case _:
                return super().receive(message)
        return None

    def _fetch(self, ask: FetchCandles) -> None:
        try:
            result = self.feed.fetch(ask.symbols, ask.close_ms)
        except Exception as exc:
            # a bug, not the exchange (its errors are `missing`): answer anyway, so that the
            # trader's tick is released, then die and be restarted
            why = f"market data failed: {type(exc).__name__}: {exc}"
            self._reply(
                ask,
                CandlesClosed(
                    at=ask.at,
                    close_ms=ask.close_ms,
                    candles={},
                    missing=dict.fromkeys(ask.symbols, why),
                    tick_id=ask.tick_id,
                ),
            )
            raise
        if ask.tick_id:  # a candle close asks for every symbol the trader needs
            self.feed.forget(ask.symbols)
        reply = CandlesClosed(
            at=ask.at,
            close_ms=ask.close_ms,
            candles=result.candles,
            missing=result.missing,
            tick_id=ask.tick_id,
        )
        self._reply(ask, reply)

    def _reply(self, ask: FetchCandles, reply: CandlesClosed) -> None:
        try:
            ask.reply_to.tell(reply)
        except pykka.ActorDeadError:  # it stopped meanwhile; its successor asks anew
            self.log.info(
                "Candles of %d symbols not delivered: the trader stopped", len(ask.symbols)
            )
