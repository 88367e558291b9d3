"""TraderActor: signals, orders and positions, on every closed candle.

What stays here is the actor's own: message handling, its timers, the I/O it
orchestrates (ledger, exchange, work outside the mailbox) and the admin-close
flow; its handlers share the pause flag, the reconciliation state and the closes
in flight. Its pure parts live elsewhere, tested without an actor: the decision
rule in models/decision.py (`policy.risk`); the book-keeping (positions, last
prices, decided candles, cooldowns, trade results, balances, equity, the summary
line, heartbeat counts, the status) in policy/portfolio.py (`Portfolio`, loaded
from the ledger's rows at start); its longer log lines and answers in
policy/trade_lines.py; the ledger I/O in execution/orders.py and
execution/reconcile.py.

Accepts:
- `TradeTick` (its clock timer, once per candle, just after the close): asks the
  market-data actor for the candle that closed, for every ACTIVE symbol with a
  model and every open position (`FetchCandles`), and returns at once.
- `CandlesClosed` (market data): for each symbol served, build the latest
  features, ask its model for P(up), decide within the risk limits, and place
  orders; a symbol without data this candle is named in the log. Symbols that
  are not ACTIVE produce no signal and no entry; their open positions keep their
  stop loss. The trader never waits on a REST call for candles.
After each candle's decisions (or at its tick, when there is nothing to decide)
it logs one summary line at INFO (`policy.summary`): equity, realized and
unrealized PnL, open positions, symbols active / training / blocked; each
symbol's P(up) and decision at DEBUG.
- `HeartbeatTick` (every heartbeat_s): logs
  `Bot heartbeat: X active symbols, Y blocked, Z open positions` (`1 open position`).
- `HealthTick` (every health_s): checks the exchange answers, fetching the balances
  outside the mailbox (`BalancesFetched`): a stalled exchange never holds up a
  message. Balances are fetched so after a start and after each fill too, and
  `GetTraderStatus` answers from them without asking the exchange.
- `ModelsUpdated` (store), `SymbolStates` (coverage): what it may trade and with what.
- `Pause`, `Resume` (admin): reply `CommandResult`.
- `CloseSymbol`, `CloseAll` (admin): reply `CommandResult` once the exchange answered
  (a `Later`): the price lookup and the sale run outside the mailbox (`ClosePriced`,
  `OrderAnswered` come back), so a stalled exchange holds up no other message. A
  close asked again while one is in flight for the symbol gets that one's answer, and
  nothing else is placed for the symbol meanwhile: one order, however often asked.
- `GetTraderStatus` (ask): reply `TraderStatus`, with the trade results:
  realized PnL after every fee, fees paid, round trips and win rate
  (`policy.results`, rebuilt from the ledger's fills at every start).

A sale that closes a position logs the round trip's result, e.g.
`BTC/USDT: SELL ... fee 0.1000 USDT, round trip +0.42 USDT (+0.35 %)`.

Every order is recorded in the ledger (state NEW, then SENT) before it is sent, under a
client order id derived from (symbol, candle time, intent), and its answer is
recorded with its fill and the position in one transaction (`execution.orders`).

At start (and so after any restart) the trader reloads its positions, pause
flag and realized PnL from the ledger and reconciles the ledger with the
exchange (`policy.reconcile`) before it places anything; the one-line
summary is logged (`Reconciled with paper: ...`) and published as `Reconciled`.
If the exchange cannot be asked, or an order's outcome is unknown (the exchange
did not answer create_order), no order is placed until a reconciliation succeeds
(retried on every candle, asking only about the unresolved and resting orders and
the positions: `execution.reconcile`'s retry).

After a (re)start nothing is decided until both the model store's and the coverage
actor's first snapshots have arrived: a held position judged without its model
would lose an exit signal (only the stop loss applies without one). The candle
that closed meanwhile is decided as soon as both are in.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pykka

from actors.base import BaseActor, Later, Runtime, Topic
from actors.clock import Clock, Mailbox
from actors.messages import (
    BalancesFetched,
    CandlesClosed,
    CandlesOverdue,
    CloseAll,
    ClosePriced,
    CloseSymbol,
    CommandResult,
    FetchCandles,
    GetTraderStatus,
    HealthTick,
    Heartbeat,
    HeartbeatTick,
    ModelsUpdated,
    OrderAnswered,
    OrderFailed,
    OrderPlaced,
    Pause,
    Reconciled,
    ReconcileDue,
    Resume,
    SignalProduced,
    Subscribe,
    SymbolStates,
    TraderStatus,
    TradeTick,
)
from config.settings import TradingSettings
from core.text import plural
from core.timefmt import format_utc
from core.timeframes import timeframe_s
from exchange.port import ExchangePort
from exchange.types import Candle, ExchangeError, Order, OrderRequest, Side
from execution.orders import Sent, record_intent, record_refusal, send
from execution.reconcile import reconcile, record_order
from models.artifacts import LoadedModel
from policy.lifecycle import SymbolState
from policy.portfolio import Portfolio
from policy.reconcile import ReconcileReport
from policy.results import format_round_trip
from policy.risk import (
    Decision,
    Intent,
    client_order_id,
    decide,
    limits_from_settings,
)
from policy.trade_lines import closed_all_detail, missing_lines, partial_fill_note
from storage.ledger import Ledger, OrderRow

PAUSED_KEY = "trader.paused"


class TraderActor(BaseActor):
    def __init__(
        self,
        *,
        clock: Clock,
        exchange: ExchangePort,
        ledger: Ledger,
        trading: TradingSettings,
        timeframe: str,
        heartbeat_s: float,
        health_s: float,
        quote: str,
        store: Mailbox,
        coverage: Mailbox,
        market_data: Mailbox,
        supervisor: Mailbox | None = None,
        events: Topic | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        super().__init__("trader", clock, supervisor, events, runtime)
        self.exchange = exchange
        self.ledger = ledger
        self.settings = trading
        self.timeframe = timeframe
        self.tf_s = timeframe_s(timeframe)
        self.limits = limits_from_settings(trading, self.tf_s)
        self.heartbeat_s = heartbeat_s
        self.health_s = health_s
        self.quote = quote
        self.store = store
        self.coverage = coverage
        self.market_data = market_data
        # the first snapshots since this (re)start: nothing is decided before both arrived
        self.states_known = False
        self.models_known = False
        # trade ticks held until their candles arrive -> the timer that stops the wait
        self.waiting_ticks: dict[int, int] = {}
        self.states: dict[str, SymbolState] = {}
        self.models: dict[str, LoadedModel] = {}
        # positions, prices, cooldowns, trade results, balances: reloaded from the ledger at
        # start, then kept up to date by each order's answer and each reconciliation
        self.portfolio = Portfolio(quote)
        self.paused = False
        self.last_tick_at: float | None = None
        self.reconciled = False  # no order is placed until the ledger agrees with the exchange
        self.started_reconciled = False  # reconciled once since this (re)start
        # admin closes in flight (price lookup or sale, outside the mailbox) -> whom to tell
        # the outcome; nothing else is placed for such a symbol until it is known
        self.closing: dict[str, list[Callable[[CommandResult], None]]] = {}
        self.sending = 0  # orders sent outside the mailbox, answer not back yet

    def started(self) -> None:
        self.log.info(
            "Main loop started. Health checks every %ds, heartbeat every %ds",
            self.health_s,
            self.heartbeat_s,
        )
        self._load()
        self._reconcile()
        now = self.clock.now()
        next_close = (math.floor(now / self.tf_s) + 1) * self.tf_s
        self.every(self.tf_s, TradeTick, first_at=next_close + self.settings.candle_delay_s)
        self.every(self.heartbeat_s, HeartbeatTick)
        self.every(self.health_s, HealthTick)
        # our own ref: replaces the static subscription, so a restarted trader gets a snapshot
        self.store.tell(Subscribe(name="trader", subscriber=self.actor_ref))
        self.coverage.tell(Subscribe(name="trader", subscriber=self.actor_ref))

    def receive(self, message: Any) -> Any:
        match message:
            case TradeTick(at=at, timer_id=timer_id):
                self.last_tick_at = self.clock.now()
                if self.reconciled or self._reconcile():
                    self._ask_candles(at, self._closed_at(at), tick_id=timer_id)
                if timer_id not in self.waiting_ticks:  # nothing to decide this candle
                    self._summarize()
            case CandlesClosed():
                self._on_candles(message)
            case ReconcileDue():
                if not self.reconciled:
                    self._reconcile()
            case CandlesOverdue(tick_id=tick_id):
                if self._stop_waiting(tick_id):
                    self.log.warning(
                        "No candles from market data within %ds of asking: this candle is "
                        "not decided",
                        self.tf_s,
                    )
                    self._summarize()
            case HeartbeatTick():
                self._heartbeat()
            case HealthTick():
                self._fetch_balances(health=True)
            case BalancesFetched():
                self._on_balances(message)
            case ModelsUpdated(models=models):
                before = self._tradable()
                self.models = models
                self._snapshot_arrived(before, "models")
            case SymbolStates(records=records):
                before = self._tradable()
                self.states = {r.symbol: r.state for r in records}
                self._snapshot_arrived(before, "states")
            case Pause():
                self.paused = True
                self.ledger.set_value(PAUSED_KEY, "1")
                self.log.info("Trading paused: no new entries; exits still managed")
                return CommandResult(ok=True, detail="paused: no new entries, exits still managed")
            case Resume():
                self.paused = False
                self.ledger.set_value(PAUSED_KEY, "0")
                self.log.info("Trading resumed")
                return CommandResult(ok=True, detail="resumed")
            case CloseSymbol(symbol=symbol):
                later = self.reply_later()
                self._close(symbol, later.answer)
                return later
            case CloseAll():
                return self._close_all()
            case ClosePriced():
                self._on_close_priced(message)
            case OrderAnswered():
                self._on_order_answered(message)
            case GetTraderStatus():
                return self._status()
            case _:
                return super().receive(message)
        return None

    # --- state and reconciliation -----------------------------------------------------

    def _load(self) -> None:
        """What a previous incarnation (or process) left in the ledger (read once, at start:
        afterwards the trader knows each change it makes, and a reconciliation says its own)."""
        self.paused = self.ledger.value(PAUSED_KEY) == "1"
        self.portfolio = Portfolio.load(
            self.quote,
            fills=self.ledger.fills(),
            orders=self.ledger.orders(),
            positions=self.ledger.positions(),
        )

    def _apply_reconciled(self, report: ReconcileReport) -> None:
        """What a reconciliation changed: the fills it recorded and the positions (it may cut
        them); nothing else in the ledger moved."""
        # when each sale it found was decided: the cooldown counts from then
        decided_at: dict[str, float] = {}
        for fill in report.fills:
            row = self.ledger.get(fill.client_order_id) if fill.side == Side.SELL else None
            if row is not None:
                decided_at[fill.client_order_id] = row.created_at
        self.portfolio.apply_reconciled(report.fills, self.ledger.positions(), decided_at)

    def _reconcile(self) -> bool:
        """Make the ledger agree with the exchange; True when trading may go on."""
        if self.sending:  # its lookup could call an order on the wire "never sent"
            self.log.info(
                "Reconciliation waits for the answer to %s sent (looked at again next candle)",
                plural(self.sending, "order"),
            )
            return False
        try:
            report = reconcile(
                self.exchange,
                self.ledger,
                self.clock.now(),
                settle_s=self.exchange.settle_window_s,
                retry=self.started_reconciled,
            )
        except ExchangeError as exc:
            self.reconciled = False
            self.log.warning(
                "Reconciliation with %s failed: %s; no orders until it succeeds (retried every "
                "candle)",
                self.exchange.name,
                exc,
            )
            return False
        for note in report.notes:
            self.log.info("%s", note)
        for mismatch in report.mismatches:
            self.log.warning("%s (reconciliation mismatch)", mismatch)
        summary = report.summary(self.exchange.name)
        self.log.info("%s", summary)
        self._apply_reconciled(report)
        if report.retry_at is not None:  # a SENT order may still arrive: not decided yet
            self.reconciled = False
            due = self.clock.schedule_once(report.retry_at, self.actor_ref, ReconcileDue())
            self._timers.append(due)  # cancelled if the trader stops first
            self.log.info(
                "No orders until %s is looked up again at %s",
                plural(report.in_flight, "order in flight", "orders in flight"),
                format_utc(report.retry_at, seconds=True),
            )
            return False
        self.reconciled = True
        self.started_reconciled = True
        self._fetch_balances()
        self.publish(
            Reconciled(
                at=self.clock.now(),
                exchange=self.exchange.name,
                resolved=dict(report.resolved),
                positions=report.positions,
                mismatches=len(report.mismatches),
                summary=summary,
            )
        )
        return True

    # --- trading ----------------------------------------------------------------------

    def _tradable(self) -> set[str]:
        return {s for s, st in self.states.items() if st is SymbolState.ACTIVE and s in self.models}

    # --- candles in (market data) -----------------------------------------------------------

    def _ready(self) -> bool:
        """Both first snapshots are in: every symbol's state and model are known."""
        return self.states_known and self.models_known

    def _wanted(self) -> list[str]:
        """The symbols a candle is decided for: tradable ones and open positions."""
        return sorted(self._tradable() | set(self.portfolio.positions))

    def _closed_at(self, tick_at: float) -> int:
        """The close time (epoch ms) of the candle a trade tick due at `tick_at` is for: the
        newest closed `candle_delay_s` before it."""
        close_s = math.floor((tick_at - self.settings.candle_delay_s) / self.tf_s) * self.tf_s
        return int(close_s * 1000)

    def _ask_candles(
        self, at: float, close_ms: int, only: set[str] | None = None, tick_id: int = 0
    ) -> None:
        """Ask market data for the candle closed at `close_ms`. With `tick_id` (a trade tick),
        the tick is handled only once the reply is: the decisions are part of it."""
        if not self._ready():
            positions = len(self.portfolio.positions)
            if positions:
                waiting = [
                    what
                    for what, known in (
                        ("symbol states", self.states_known),
                        ("models", self.models_known),
                    )
                    if not known
                ]
                self.log.info(
                    "Candle not decided yet for %s: waiting for the first %s since the start",
                    plural(positions, "open position"),
                    " and ".join(waiting),
                )
            return
        symbols = [s for s in self._wanted() if only is None or s in only]
        if not symbols:
            return
        ask = FetchCandles(
            at=at,
            symbols=tuple(symbols),
            close_ms=close_ms,
            reply_to=self.actor_ref,
            tick_id=tick_id,
        )
        if not _delivered(self.market_data, ask):
            self.log.warning(
                "Market data is not running (being restarted?): %s not decided this candle",
                plural(len(symbols), "symbol"),
            )
            return
        if tick_id:
            # the tick's handling waits for the answer; should the request be lost (market
            # data died with it queued), a candle later the trader stops waiting
            self.hold_tick()
            overdue = self.clock.schedule_once(
                self.clock.now() + self.tf_s, self.actor_ref, CandlesOverdue(tick_id=tick_id)
            )
            self.waiting_ticks[tick_id] = overdue
            self._timers.append(overdue)  # cancelled if the trader stops first

    def _on_candles(self, message: CandlesClosed) -> None:
        try:
            for line in missing_lines(message.missing):
                self.log.warning("%s", line)
            if not self._ready() or not self.reconciled:  # retried at the next candle
                return
            for symbol in sorted(message.candles):
                self._trade(symbol, message.candles[symbol])
        finally:
            if self._stop_waiting(message.tick_id):  # the candle's tick is done
                self._summarize()

    def _stop_waiting(self, tick_id: int) -> bool:
        """Release a trade tick held for its candles; False if it was not held (any more)."""
        overdue = self.waiting_ticks.pop(tick_id, None)
        if overdue is None:
            return False
        self.clock.cancel(overdue)
        self._timers.remove(overdue)
        self.release_tick(tick_id)
        return True

    def _last_close_ms(self) -> int:
        """The close time of the newest candle closed now (a symbol that just became
        tradable is decided on it, as the first tick after a start decides the next)."""
        now_ms = math.floor(self.clock.now() * 1000)
        return now_ms - now_ms % (self.tf_s * 1000)

    def _snapshot_arrived(self, before: set[str], which: str) -> None:
        """A symbol that just became ACTIVE with a model is decided on the last closed candle
        now, rather than up to a whole candle later (whichever of its state and model came
        last); once both first snapshots are in, so is every open position."""
        was_ready = self._ready()
        if which == "models":
            self.models_known = True
        else:
            self.states_known = True
        if not self.reconciled or not self._ready():
            return
        if not was_ready:
            self._ask_candles(self.clock.now(), self._last_close_ms())
            return
        new = self._tradable() - before
        if new:
            self._ask_candles(self.clock.now(), self._last_close_ms(), only=new)

    def _trade(self, symbol: str, candles: np.ndarray) -> None:
        """Decide on the newest of `candles` (a read-only window from `CandlesClosed`)."""
        if not self.reconciled:  # an earlier order's outcome is unknown: look it up first
            return
        active = self.states.get(symbol) is SymbolState.ACTIVE
        model = self.models.get(symbol) if active else None
        position = self.portfolio.positions.get(symbol)
        if model is None and position is None:
            return
        lookback = model.strategy.lookback_bars if model is not None else 1
        if not len(candles):
            return
        candle_ms, price = int(candles[-1][0]), float(candles[-1][4])
        if not self.portfolio.new_candle(symbol, candle_ms, price):
            return  # already decided on this candle
        prob_up: float | None = None
        if model is not None and len(candles) >= lookback:
            features = model.strategy.latest_features(np.asarray(candles, dtype=np.float64))
            prob_up = model.prob_up(features)
            self.publish(
                SignalProduced(
                    at=self.clock.now(), symbol=symbol, candle_ms=candle_ms, prob_up=prob_up
                )
            )
        decision = decide(
            symbol=symbol,
            prob_up=prob_up,
            price=price,
            position=position,
            open_positions=len(self.portfolio.positions),
            paused=self.paused,
            limits=self.limits,
            now=self.clock.now(),
            last_exit_at=self.portfolio.last_exit_at.get(symbol),
        )
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug(
                "%s: P(up) %s at %.6g %s: %s",
                symbol,
                "-" if prob_up is None else f"{prob_up:.3f}",
                price,
                self.quote,
                "hold" if decision is None else f"{decision.intent} ({decision.why})",
            )
        if decision is not None:
            self._place(symbol, candle_ms, price, decision)

    def _place(self, symbol: str, candle_ms: int, price: float, decision: Decision) -> bool:
        """Record, send and record the answer, in the handler (a candle's decisions)."""
        if symbol in self.closing:
            self.log.info(
                "%s: %s order not placed: an admin close of it is in flight",
                symbol,
                decision.intent,
            )
            return False
        request = self._record_intent(symbol, candle_ms, decision)
        if request is None:
            return False
        return self._answered(request, decision, price, send(self.exchange, request))

    def _record_intent(
        self, symbol: str, candle_ms: int, decision: Decision
    ) -> OrderRequest | None:
        """The order recorded NEW then SENT under its client order id; None if it was already
        (never sent twice)."""
        coid = client_order_id(symbol, candle_ms, decision.intent)
        now = self.clock.now()
        row = OrderRow(
            client_order_id=coid,
            symbol=symbol,
            side=Side.BUY if decision.intent is Intent.ENTRY else Side.SELL,
            intent=decision.intent,
            amount=decision.amount,
            candle_ms=candle_ms,
            created_at=now,
            updated_at=now,
        )
        request = record_intent(self.ledger, row, now)
        if request is None:
            self.log.info("%s: order %s already in the ledger; not sent again", symbol, coid)
        return request

    def _answered(
        self, request: OrderRequest, decision: Decision, price: float, sent: Sent
    ) -> bool:
        """Record what became of a sent order; True if the exchange took it."""
        if sent.order is not None:
            self._record_fill(sent.order, decision, price)
            return True
        now = self.clock.now()
        symbol, coid, error = request.symbol, request.client_order_id, sent.error or ""
        if sent.refused:
            record_refusal(self.ledger, coid, error, now)
            self.log.warning("%s: %s order %s refused: %s", symbol, decision.intent, coid, error)
        else:  # it may have reached the exchange: stays SENT until looked up
            self.reconciled = False
            self.log.warning(
                "%s: %s order %s outcome unknown (%s); no orders until it is looked up",
                symbol,
                decision.intent,
                coid,
                error,
            )
        self.publish(
            OrderFailed(
                at=now, symbol=symbol, client_order_id=coid, intent=decision.intent, error=error
            )
        )
        return False

    def _record_fill(self, order: Order, decision: Decision, price: float) -> None:
        now = self.clock.now()
        recorded = record_order(self.ledger, order.client_order_id, order, now)
        self._fetch_balances()  # the fill moved them
        trip = self.portfolio.apply_order(order, recorded.position, recorded.fill, now)
        fill_price = order.average_price or price
        symbol = order.symbol
        self.log.info(
            "%s: %s %.8g at %.6g %s (%s: %s), order %s, fee %.4f %s%s",
            symbol,
            order.side.upper(),
            order.filled,
            fill_price,
            self.quote,
            decision.intent,
            decision.why,
            order.client_order_id,
            order.fee_quote,
            self.quote,
            f", {format_round_trip(trip, self.quote)}" if trip is not None else "",
        )
        partial = partial_fill_note(order)
        if partial:
            self.log.warning("%s", partial)
        self.publish(
            OrderPlaced(
                at=now,
                symbol=symbol,
                client_order_id=order.client_order_id,
                side=order.side,
                intent=decision.intent,
                amount=order.filled,
                price=fill_price,
                why=decision.why,
                fee_quote=order.fee_quote,
                net_pnl=None if trip is None else trip.net_pnl,
                return_pct=None if trip is None else trip.return_pct,
            )
        )

    # --- admin closes: the exchange is asked outside the mailbox ---------------------------

    def _close_all(self) -> Later:
        """Close every open position; one answer once each close has its own."""
        later = self.reply_later()
        symbols = sorted(self.portfolio.positions)
        closed: dict[str, bool] = {}

        def answer() -> None:
            oks = list(closed.values())
            later.answer(CommandResult(ok=all(oks), detail=closed_all_detail(oks)))

        def one_done(symbol: str) -> Callable[[CommandResult], None]:
            def done(result: CommandResult) -> None:
                closed[symbol] = result.ok
                if len(closed) == len(symbols):
                    answer()

            return done

        for symbol in symbols:
            self._close(symbol, one_done(symbol))
        if not symbols:
            answer()
        return later

    def _close(self, symbol: str, done: Callable[[CommandResult], None]) -> None:
        """Sell `symbol`'s whole position at market; `done(result)` once the exchange has
        answered (at once when there is nothing to sell). Asked again while that close is in
        flight, the same close answers both."""
        waiting = self.closing.get(symbol)
        if waiting is not None:
            waiting.append(done)
            return
        if not self.reconciled:
            done(CommandResult(ok=False, detail="not reconciled with the exchange yet"))
            return
        if symbol not in self.portfolio.positions:
            done(CommandResult(ok=False, detail=f"{symbol}: no open position"))
            return
        self.closing[symbol] = [done]
        exchange, timeframe = self.exchange, self.timeframe

        def priced(got: list[Candle] | ExchangeError) -> ClosePriced:
            if isinstance(got, ExchangeError):
                return ClosePriced(symbol=symbol, error=str(got))
            if not got:
                return ClosePriced(symbol=symbol, error="no closed candle")
            return ClosePriced(symbol=symbol, candle_ms=int(got[-1][0]), price=float(got[-1][4]))

        # The last closed candle (the port returns closed candles only), not a ticker: its
        # open time keys the client order id as for every decision (symbol, candle, intent),
        # so a close asked twice within a candle can never be sent twice. Its close price is
        # only what the log shows if the exchange reports no average price: a market sale of
        # the whole amount needs none. A ticker would be fresher by under a candle but keys
        # nothing, and the port has only every market's tickers at once (heavy on Binance).
        self.run_outside(
            lambda: exchange.fetch_ohlcv(symbol, timeframe, limit=1), priced, expected=ExchangeError
        )

    def _on_close_priced(self, message: ClosePriced) -> None:
        """The price is in: record the sale (NEW, SENT) and send it outside the mailbox."""
        symbol = message.symbol
        position = self.portfolio.positions.get(symbol)
        if message.candle_ms is None or message.price is None:
            result = CommandResult(
                ok=False, detail=f"{symbol}: no price to close at: {message.error}"
            )
        elif not self.reconciled:  # an order's outcome became unknown meanwhile
            result = CommandResult(ok=False, detail="not reconciled with the exchange yet")
        elif position is None:  # a reconciliation found it sold meanwhile
            result = CommandResult(ok=False, detail=f"{symbol}: no open position")
        else:
            decision = Decision(intent=Intent.CLOSE, amount=position.amount, why="closed by admin")
            request = self._record_intent(symbol, message.candle_ms, decision)
            if request is not None:
                self._send_outside(request, decision, message.price)
                return
            result = CommandResult(ok=False, detail=f"{symbol}: close order failed (see the log)")
        self._closed(symbol, result)

    def _send_outside(self, request: OrderRequest, decision: Decision, price: float) -> None:
        """`create_order` in a thread of its own; `OrderAnswered` comes back."""
        exchange = self.exchange
        self.sending += 1

        def answered(sent: Sent) -> OrderAnswered:
            return OrderAnswered(request=request, decision=decision, price=price, sent=sent)

        self.run_outside(lambda: send(exchange, request), answered)

    def _on_order_answered(self, message: OrderAnswered) -> None:
        self.sending -= 1
        symbol = message.request.symbol
        if self._answered(message.request, message.decision, message.price, message.sent):
            self._closed(symbol, CommandResult(ok=True, detail=f"{symbol}: position closed"))
        else:
            detail = f"{symbol}: close order failed (see the log)"
            self._closed(symbol, CommandResult(ok=False, detail=detail))

    def _closed(self, symbol: str, result: CommandResult) -> None:
        for done in self.closing.pop(symbol, []):
            done(result)

    # --- reporting ----------------------------------------------------------------------

    def _heartbeat(self) -> None:
        counts = self.portfolio.heartbeat(self.states.values())
        self.log.info(
            "Bot heartbeat: %s, %d blocked, %s",
            plural(counts.active, "active symbol"),
            counts.blocked,
            plural(counts.open_positions, "open position"),
        )
        self.publish(
            Heartbeat(
                at=self.clock.now(),
                active=counts.active,
                blocked=counts.blocked,
                open_positions=counts.open_positions,
            )
        )

    def _summarize(self) -> None:
        """The candle's one INFO line: equity, PnL, positions, what the symbols do."""
        self.log.info("%s", self.portfolio.summary(self.states.values(), self.paused))

    def _fetch_balances(self, health: bool = False) -> None:
        """Fetch the balances outside the mailbox; `BalancesFetched` comes back."""
        seq = self.portfolio.next_balances_seq()

        def done(got: dict[str, Any] | ExchangeError) -> BalancesFetched:
            if isinstance(got, ExchangeError):
                return BalancesFetched(seq=seq, balances=None, error=str(got), health=health)
            return BalancesFetched(seq=seq, balances=got, health=health)

        self.run_outside(self.exchange.fetch_balances, done, expected=ExchangeError)

    def _on_balances(self, message: BalancesFetched) -> None:
        self.portfolio.apply_balances(message.seq, message.balances)
        if not message.health:
            return
        if message.balances is None:
            self.log.warning(
                "Health check: exchange %s not answering: %s", self.exchange.name, message.error
            )
            return
        self.log.debug(  # the per-candle summary says the equity at INFO
            "Health check OK: %s answers, equity %.2f %s, %s",
            self.exchange.name,
            self.portfolio.equity(message.balances),
            self.quote,
            plural(len(self.portfolio.positions), "open position"),
        )

    def _status(self) -> TraderStatus:
        held = self.portfolio.status()
        return TraderStatus(
            paused=self.paused,
            positions=held.positions,
            realized_pnl=held.realized_pnl,
            equity=held.equity,
            orders_placed=held.orders_placed,
            last_tick_at=self.last_tick_at,
            fees_quote=held.fees_quote,
            round_trips=held.round_trips,
            wins=held.wins,
            win_rate=held.win_rate,
        )


def _delivered(mailbox: Mailbox, message: Any) -> bool:
    """Tell `mailbox`; False if it is not running (an Address between incarnations drops
    what it is told, and a held tick must not wait for an answer that cannot come)."""
    is_alive = getattr(mailbox, "is_alive", None)
    if is_alive is not None and not is_alive():
        return False
    try:
        mailbox.tell(message)
    except pykka.ActorDeadError:
        return False
    return True
