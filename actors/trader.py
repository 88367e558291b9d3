"""TraderActor: signals, orders and positions, on every closed candle.

Accepts:
- `TradeTick` (its clock timer, once per candle, just after the close): for each
  ACTIVE symbol, build the latest features, ask its model for P(up), decide
  within the risk limits, and place orders. Symbols that are not ACTIVE produce
  no signal and no entry; their open positions keep their stop loss.
- `HeartbeatTick` (every heartbeat_s): logs
  `Bot heartbeat: X active symbols, Y blocked, Z open positions`.
- `HealthTick` (every health_s): checks the exchange answers.
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
(retried on every candle).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from actors.base import BaseActor, Runtime, Topic
from actors.clock import Clock, Mailbox
from actors.messages import (
    CloseAll,
    CloseSymbol,
    CommandResult,
    GetTraderStatus,
    HealthTick,
    Heartbeat,
    HeartbeatTick,
    ModelsUpdated,
    OrderFailed,
    OrderPlaced,
    Pause,
    Reconciled,
    Resume,
    SignalProduced,
    Subscribe,
    SymbolStates,
    TraderStatus,
    TradeTick,
)
from config.settings import TradingSettings
from core.timeframes import timeframe_s
from exchange.port import ExchangePort
from exchange.types import ExchangeError, Order, OrderRejected, OrderRequest, Side
from execution.reconcile import reconcile, record_order
from models.artifacts import LoadedModel
from policy.lifecycle import SymbolState, is_blocked
from policy.reconcile import position_of
from policy.results import TradeBook, format_round_trip
from policy.risk import (
    Decision,
    Intent,
    Position,
    client_order_id,
    decide,
    limits_from_settings,
)
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
            case TradeTick():
                self.last_tick_at = self.clock.now()
                if self.reconciled or self._reconcile():
                    for symbol in sorted(set(self.states) | set(self.positions)):
                        self._trade(symbol)
            case HeartbeatTick():
                self._heartbeat()
            case HealthTick():
                self._health()
            case ModelsUpdated(models=models):
                before = self._tradable()
                self.models = models
                self._trade_newly_tradable(before)
            case SymbolStates(records=records):
                before = self._tradable()
                self.states = {r.symbol: r.state for r in records}
                self._trade_newly_tradable(before)
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
                    ok=all(r.ok for r in results), detail=f"closed {closed} positions"
                )
            case GetTraderStatus():
                return self._status()
            case _:
                return super().receive(message)
        return None

    # --- state and reconciliation -----------------------------------------------------

    def _load(self) -> None:
        """What a previous incarnation (or process) left in the ledger."""
        self.paused = self.ledger.value(PAUSED_KEY) == "1"
        self.book = TradeBook.of(self.ledger.fills())
        for row in self.ledger.orders():  # a decided candle is never decided again
            if row.candle_ms > self.last_candle_ms.get(row.symbol, -1):
                self.last_candle_ms[row.symbol] = row.candle_ms
            if row.side == Side.SELL and row.filled > 0:  # the cooldown survives a restart
                self.last_exit_at[row.symbol] = max(
                    row.created_at, self.last_exit_at.get(row.symbol, row.created_at)
                )
        self.positions = {s: position_of(r) for s, r in self.ledger.positions().items()}

    def _reconcile(self) -> bool:
        """Make the ledger agree with the exchange; True when trading may go on."""
        try:
            report = reconcile(self.exchange, self.ledger, self.clock.now())
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
        self._load()
        self.reconciled = True
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

    def _trade_newly_tradable(self, before: set[str]) -> None:
        """Trade a symbol that just became ACTIVE with a model on the last closed candle now,
        rather than up to a whole candle later (whichever of its state and model came last)."""
        if not self.reconciled:
            return
        for symbol in sorted(self._tradable() - before):
            self._trade(symbol)

    def _trade(self, symbol: str) -> None:
        if not self.reconciled:  # an earlier order's outcome is unknown: look it up first
            return
        active = self.states.get(symbol) is SymbolState.ACTIVE
        model = self.models.get(symbol) if active else None
        position = self.positions.get(symbol)
        if model is None and position is None:
            return
        lookback = model.strategy.lookback_bars if model is not None else 1
        try:
            candles = self.exchange.fetch_ohlcv(symbol, self.timeframe, limit=lookback + 5)
        except ExchangeError as exc:
            self.log.warning("%s: no market data this candle: %s", symbol, exc)
            return
        if not candles:
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
            "Bot heartbeat: %d active symbols, %d blocked, %d open positions",
            active,
            blocked,
            positions,
        )
        self.publish(
            Heartbeat(at=self.clock.now(), active=active, blocked=blocked, open_positions=positions)
        )

    def _health(self) -> None:
        try:
            balances = self.exchange.fetch_balances()
        except ExchangeError as exc:
            self.log.warning("Health check: exchange %s not answering: %s", self.exchange.name, exc)
            return
        self.log.info(
            "Health check OK: %s answers, equity %.2f %s, %d open positions",
            self.exchange.name,
            self._equity(balances),
            self.quote,
            len(self.positions),
        )

    def _equity(self, balances: dict[str, Any] | None = None) -> float:
        if balances is None:
            try:
                balances = self.exchange.fetch_balances()
            except ExchangeError:
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
