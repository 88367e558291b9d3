"""Trading decisions for one symbol on one closed candle: signal -> intent, within risk limits.

Also the client order id, derived from (symbol, candle time, intent) so that a
retry or a restart that decides the same thing again can never place a second
order: the exchange (and our ledger) see the same id.
"""

from __future__ import annotations

import enum
import hashlib

import msgspec


class Intent(enum.StrEnum):
    ENTRY = "entry"  # open a long position on a buy signal
    EXIT = "exit"  # close it on a sell signal
    STOP_LOSS = "stop_loss"  # close it because price fell below the stop
    CLOSE = "close"  # close on request (admin close, symbol retired)


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True):
    stake_quote: float  # quote currency spent per entry, e.g. 100 USDT
    max_open_positions: int
    stop_loss_pct: float  # e.g. 2.0 = exit when price is 2 % below entry
    entry_threshold: float  # enter when P(up) >= this
    exit_threshold: float  # exit when P(up) <= this


class Position(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    amount: float  # base units held
    entry_price: float
    opened_at: float


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    intent: Intent
    amount: float  # base units to buy (ENTRY) or sell (others)
    why: str


def decide(
    *,
    symbol: str,
    prob_up: float | None,
    price: float,
    position: Position | None,
    open_positions: int,
    paused: bool,
    limits: RiskLimits,
) -> Decision | None:
    """What to do for `symbol` at `price`. prob_up None = no signal (not ACTIVE): exits only.

    Protective exits (stop loss) apply to any position; entries need an ACTIVE
    symbol's signal, a free position slot, and the bot not paused.
    """
    if position is not None:
        stop = position.entry_price * (1 - limits.stop_loss_pct / 100)
        if price <= stop:
            return Decision(
                intent=Intent.STOP_LOSS,
                amount=position.amount,
                why=f"price {price:.6g} <= stop {stop:.6g} ({limits.stop_loss_pct:g}% below entry)",
            )
        if prob_up is not None and prob_up <= limits.exit_threshold:
            return Decision(
                intent=Intent.EXIT,
                amount=position.amount,
                why=f"P(up) {prob_up:.3f} <= exit threshold {limits.exit_threshold:.3f}",
            )
        return None
    if prob_up is None or paused or prob_up < limits.entry_threshold:
        return None
    if open_positions >= limits.max_open_positions:
        return None
    return Decision(
        intent=Intent.ENTRY,
        amount=limits.stake_quote / price,
        why=f"P(up) {prob_up:.3f} >= entry threshold {limits.entry_threshold:.3f}",
    )


def client_order_id(symbol: str, candle_time_ms: int, intent: Intent) -> str:
    """A stable id for (symbol, candle, intent): 'ta' + 30 hex chars (exchanges allow <= 36)."""
    digest = hashlib.sha256(f"{symbol}|{candle_time_ms}|{intent}".encode()).hexdigest()
    return "ta" + digest[:30]
