"""TraderActor: signals, orders and positions, on every closed candle.

One module over 500 lines because it is one actor: its handlers share the
positions, the pause flag and the reconciliation state; its pure parts already
live elsewhere (the decision rule in models/decision.py, results in
policy/results.py, the ledger I/O in execution/reconcile.py).

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
- `Pause`, `Resume`, `CloseSymbol`, `CloseAll` (admin): reply `CommandResult`.
- `GetTraderStatus` (ask): reply `TraderStatus`, with the trade results:
  realized PnL after every fee, fees paid, round trips and win rate
  (`policy.results`, rebuilt from the ledger's fills at every start).

A sale that closes a position logs the round trip's result, e.g.
`BTC/USDT: SELL ... fee 0.1000 USDT, round trip +0.42 USDT (+0.35 %)`.

Every order is recorded in the ledger (state NEW) before it is sent, under a
client order id derived from (symbol, candle time, intent), and its answer is
recorded with its fill and the position in one transaction.

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
from typing import Any

import numpy as np
import pykka

from actors.base import BaseActor, Runtime, Topic
from actors.clock import Clock, Mailbox
from actors.messages import (
    BalancesFetched,
    CandlesClosed,
    CandlesOverdue,
    CloseAll,
    CloseSymbol,
    CommandResult,
    FetchCandles,
    GetTraderStatus,
    HealthTick,
    Heartbeat,
    HeartbeatTick,
    ModelsUpdated,
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
from exchange.types import ExchangeError, Order, OrderRejected, OrderRequest, OrderStatus, Side
from execution.reconcile import reconcile, record_order
from models.artifacts import LoadedModel
from policy.lifecycle import SymbolState, is_blocked
from policy.reconcile import ReconcileReport, position_of
from policy.results import TradeBook, format_round_trip
from policy.risk import (
    Decision,
    Intent,
    Position,
    client_order_id,
    decide,
    limits_from_settings,
)
from policy.summary import summary_line
from storage.ledger import Ledger, OrderRow, OrderState

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
        self.positions: dict[str, Position] = {}
        self.last_candle_ms: dict[str, int] = {}  # newest candle already decided on
        self.last_price: dict[str, float] = {}
        self.last_exit_at: dict[str, float] = {}  # when each symbol's last sell was decided
        self.paused = False
        self.book = TradeBook()  # round trips and fees, from the ledger's fills
        self.orders_placed = 0
        self.last_tick_at: float | None = None
        self.reconciled = False  # no order is placed until the ledger agrees with the exchange
        self.started_reconciled = False  # reconciled once since this (re)start
        # the last balances fetched (outside the mailbox), for equity without I/O
        self.balances: dict[str, Any] | None = None
        self.balances_seq = 0  # requests made
        self.balances_seq_seen = 0  # the newest one applied

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
                return self._close(symbol)
            case CloseAll():
                results = [self._close(s) for s in sorted(self.positions)]
                closed = sum(r.ok for r in results)
                return CommandResult(
                    ok=all(r.ok for r in results), detail=f"closed {plural(closed, 'position')}"
                )
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
        self.book = TradeBook.of(self.ledger.fills())
        for row in self.ledger.orders():  # a decided candle is never decided again
            if row.candle_ms > self.last_candle_ms.get(row.symbol, -1):
                self.last_candle_ms[row.symbol] = row.candle_ms
            if row.side == Side.SELL and row.filled > 0:  # the cooldown survives a restart
                self._exited(row.symbol, row.created_at)
        self._load_positions()

    def _load_positions(self) -> None:
        self.positions = {s: position_of(r) for s, r in self.ledger.positions().items()}

    def _exited(self, symbol: str, decided_at: float) -> None:
        self.last_exit_at[symbol] = max(decided_at, self.last_exit_at.get(symbol, decided_at))

    def _apply_reconciled(self, report: ReconcileReport) -> None:
        """What a reconciliation changed: the fills it recorded and the positions (it may cut
        them); nothing else in the ledger moved."""
        for fill in report.fills:
            self.book.add(fill)
            if fill.side == Side.SELL:
                row = self.ledger.get(fill.client_order_id)
                self._exited(fill.symbol, row.created_at if row is not None else fill.at)
        self._load_positions()

    def _reconcile(self) -> bool:
        """Make the ledger agree with the exchange; True when trading may go on."""
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
        return sorted(self._tradable() | set(self.positions))

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
            if self.positions:
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
                    plural(len(self.positions), "open position"),
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
        position = self.positions.get(symbol)
        if model is None and position is None:
            return
        lookback = model.strategy.lookback_bars if model is not None else 1
        if not len(candles):
            return
        candle_ms, price = int(candles[-1][0]), float(candles[-1][4])
        self.last_price[symbol] = price
        if candle_ms <= self.last_candle_ms.get(symbol, -1):
            return  # already decided on this candle
        self.last_candle_ms[symbol] = candle_ms
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
            open_positions=len(self.positions),
            paused=self.paused,
            limits=self.limits,
            now=self.clock.now(),
            last_exit_at=self.last_exit_at.get(symbol),
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
        coid = client_order_id(symbol, candle_ms, decision.intent)
        side = Side.BUY if decision.intent is Intent.ENTRY else Side.SELL
        now = self.clock.now()
        row = OrderRow(
            client_order_id=coid,
            symbol=symbol,
            side=side,
            intent=decision.intent,
            amount=decision.amount,
            candle_ms=candle_ms,
            created_at=now,
            updated_at=now,
        )
        if not self.ledger.add_intent(row):
            self.log.info("%s: order %s already in the ledger; not sent again", symbol, coid)
            return False
        request = OrderRequest(
            symbol=symbol, side=side, amount=decision.amount, client_order_id=coid
        )
        self.ledger.update(coid, state=OrderState.SENT, updated_at=now)
        try:
            order = self.exchange.create_order(request)
        except ExchangeError as exc:
            if isinstance(exc, OrderRejected):
                self.ledger.update(coid, state=OrderState.REJECTED, error=str(exc), updated_at=now)
                self.log.warning("%s: %s order %s refused: %s", symbol, decision.intent, coid, exc)
            else:  # it may have reached the exchange: stays SENT until looked up
                self.reconciled = False
                self.log.warning(
                    "%s: %s order %s outcome unknown (%s); no orders until it is looked up",
                    symbol,
                    decision.intent,
                    coid,
                    exc,
                )
            self.publish(
                OrderFailed(
                    at=now,
                    symbol=symbol,
                    client_order_id=coid,
                    intent=decision.intent,
                    error=str(exc),
                )
            )
            return False
        self._record_fill(order, decision, price)
        return True

    def _record_fill(self, order: Order, decision: Decision, price: float) -> None:
        now = self.clock.now()
        recorded = record_order(self.ledger, order.client_order_id, order, now)
        self._fetch_balances()  # the fill moved them
        self.orders_placed += 1
        fill_price = order.average_price or price
        symbol = order.symbol
        if order.side == Side.SELL and order.filled > 0:
            self.last_exit_at[symbol] = now
        if recorded.position is None:
            self.positions.pop(symbol, None)
        else:
            self.positions[symbol] = recorded.position
        trip = self.book.add(recorded.fill) if recorded.fill is not None else None
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

    def _close(self, symbol: str) -> CommandResult:
        if not self.reconciled and not self._reconcile():
            return CommandResult(ok=False, detail="not reconciled with the exchange yet")
        position = self.positions.get(symbol)
        if position is None:
            return CommandResult(ok=False, detail=f"{symbol}: no open position")
        try:
            candles = self.exchange.fetch_ohlcv(symbol, self.timeframe, limit=1)
        except ExchangeError as exc:
            return CommandResult(ok=False, detail=f"{symbol}: no price to close at: {exc}")
        candle_ms, price = int(candles[-1][0]), float(candles[-1][4])
        decision = Decision(intent=Intent.CLOSE, amount=position.amount, why="closed by admin")
        if self._place(symbol, candle_ms, price, decision):
            return CommandResult(ok=True, detail=f"{symbol}: position closed")
        return CommandResult(ok=False, detail=f"{symbol}: close order failed (see the log)")

    # --- reporting ----------------------------------------------------------------------

    def _heartbeat(self) -> None:
        active = sum(st is SymbolState.ACTIVE for st in self.states.values())
        blocked = sum(is_blocked(st) for st in self.states.values())
        positions = len(self.positions)
        self.log.info(
            "Bot heartbeat: %s, %d blocked, %s",
            plural(active, "active symbol"),
            blocked,
            plural(positions, "open position"),
        )
        self.publish(
            Heartbeat(at=self.clock.now(), active=active, blocked=blocked, open_positions=positions)
        )

    def _summarize(self) -> None:
        """The candle's one INFO line: equity, PnL, positions, what the symbols do."""
        self.log.info(
            "%s",
            summary_line(
                equity=self._equity(),
                quote=self.quote,
                realized_pnl=self.book.stats().realized_pnl,
                unrealized_pnl=self.book.unrealized(self.last_price),
                open_positions=len(self.positions),
                states=self.states.values(),
                paused=self.paused,
            ),
        )

    def _fetch_balances(self, health: bool = False) -> None:
        """Fetch the balances outside the mailbox; `BalancesFetched` comes back."""
        self.balances_seq += 1
        seq = self.balances_seq

        def done(got: dict[str, Any] | ExchangeError) -> BalancesFetched:
            if isinstance(got, ExchangeError):
                return BalancesFetched(seq=seq, balances=None, error=str(got), health=health)
            return BalancesFetched(seq=seq, balances=got, health=health)

        self.run_outside(self.exchange.fetch_balances, done, expected=ExchangeError)

    def _on_balances(self, message: BalancesFetched) -> None:
        if message.balances is not None and message.seq > self.balances_seq_seen:
            self.balances_seq_seen = message.seq
            self.balances = message.balances
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
            self._equity(message.balances),
            self.quote,
            plural(len(self.positions), "open position"),
        )

    def _equity(self, balances: dict[str, Any] | None = None) -> float:
        """Cash plus positions at their last price, from the last balances fetched (no I/O:
        a status request never waits on the exchange); NaN before any."""
        balances = self.balances if balances is None else balances
        if balances is None:
            return float("nan")
        cash = balances[self.quote].total if self.quote in balances else 0.0
        held = sum(
            p.amount * self.last_price.get(s, p.entry_price) for s, p in self.positions.items()
        )
        return float(cash + held)

    def _status(self) -> TraderStatus:
        results = self.book.stats()
        return TraderStatus(
            paused=self.paused,
            positions=tuple(self.positions[s] for s in sorted(self.positions)),
            realized_pnl=results.realized_pnl,
            equity=self._equity(),
            orders_placed=self.orders_placed,
            last_tick_at=self.last_tick_at,
            fees_quote=results.fees_quote,
            round_trips=results.round_trips,
            wins=results.wins,
            win_rate=results.win_rate,
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


def missing_lines(missing: dict[str, str], named: int = 5) -> list[str]:
    """The log lines for symbols without data this candle: one per reason, so that a ban
    over 500 symbols is one line, not 500 (`SYM: ...` prefixes are dropped to compare)."""
    by_reason: dict[str, list[str]] = {}
    for symbol, why in sorted(missing.items()):
        by_reason.setdefault(why.removeprefix(f"{symbol}: "), []).append(symbol)
    lines = []
    for why, symbols in by_reason.items():
        if len(symbols) == 1:
            lines.append(f"{symbols[0]}: no market data this candle: {why}")
            continue
        shown = ", ".join(symbols[:named])
        more = f" and {len(symbols) - named} more" if len(symbols) > named else ""
        lines.append(f"{len(symbols)} symbols ({shown}{more}): no market data this candle: {why}")
    return lines


def partial_fill_note(order: Order) -> str | None:
    """The log line saying an order filled only in part (None when it filled in full)."""
    if order.amount <= 0 or order.filled >= order.amount * (1 - 1e-9):
        return None
    rest = (
        "the rest stays open on the exchange"
        if order.status is OrderStatus.OPEN
        else "the rest will not fill (expired or canceled)"
    )
    return (
        f"{order.symbol}: order {order.client_order_id} filled only {order.filled:.8g} of "
        f"{order.amount:.8g} (partial fill, {100 * order.filled / order.amount:.0f}%); {rest}"
    )
