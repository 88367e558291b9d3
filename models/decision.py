"""The trading rules: what to do for one symbol on one closed candle. Pure, no I/O.

One ``decide()`` serves two callers, so that a model is judged by exactly the
rules that will trade it:

* the trader (``actors/trader.py``, through ``policy/risk.py``), live, paper and
  simulated;
* the walk-forward trading evaluation of every training job
  (``models/evaluation.py``), which trades each out-of-sample block with it.

It lives in ``models/`` rather than ``policy/`` because the layering puts
``models`` below ``policy``: policy may import models, never the reverse, and
training (which runs in worker processes) must not depend on the bot's policy
package. ``policy/risk.py`` re-exports everything here.

Holding times count in candles: ``bars_between(earlier, now, bar_s)`` rounds
the elapsed seconds to whole candles, so the trader (clock seconds, a few
seconds after each close) and the evaluation (candle close times) count alike.
"""

from __future__ import annotations

import enum
from typing import Protocol

import msgspec


class Intent(enum.StrEnum):
    ENTRY = "entry"  # open a long position on a buy signal
    EXIT = "exit"  # close it on a sell signal (or after max_hold_bars)
    STOP_LOSS = "stop_loss"  # close it because price fell below the stop
    CLOSE = "close"  # close on request (admin close, symbol retired)


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True):
    stake_quote: float  # quote currency spent per entry, e.g. 100 USDT
    max_open_positions: int
    stop_loss_pct: float  # e.g. 2.0 = exit when price is 2 % below entry
    entry_threshold: float  # enter when P(up) >= this
    exit_threshold: float  # exit when P(up) <= this (below entry_threshold: hysteresis)
    bar_s: float = 60.0  # seconds per candle: holding times count in candles
    min_hold_bars: int = 0  # no signal exit before this many candles; the stop loss still acts
    cooldown_bars: int = 0  # no new entry for this many candles after an exit
    max_hold_bars: int = 0  # exit after this many candles whatever the signal; 0 = no limit


class TradingRules(Protocol):
    """Where the rules come from: the ``trading:`` settings, or a training job's params."""

    @property
    def stop_loss_pct(self) -> float: ...
    @property
    def entry_threshold(self) -> float: ...
    @property
    def exit_threshold(self) -> float: ...
    @property
    def min_hold_bars(self) -> int: ...
    @property
    def cooldown_bars(self) -> int: ...
    @property
    def max_hold_bars(self) -> int: ...


def limits_of(
    rules: TradingRules, *, bar_s: float, stake_quote: float, max_open_positions: int
) -> RiskLimits:
    """``RiskLimits`` from ``rules`` on candles of ``bar_s`` seconds."""
    return RiskLimits(
        stake_quote=stake_quote,
        max_open_positions=max_open_positions,
        stop_loss_pct=rules.stop_loss_pct,
        entry_threshold=rules.entry_threshold,
        exit_threshold=rules.exit_threshold,
        bar_s=bar_s,
        min_hold_bars=rules.min_hold_bars,
        cooldown_bars=rules.cooldown_bars,
        max_hold_bars=rules.max_hold_bars,
    )


class Position(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    amount: float  # base units held
    entry_price: float
    opened_at: float


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    intent: Intent
    amount: float  # base units to buy (ENTRY) or sell (others)
    why: str


def bars_between(earlier: float, later: float, bar_s: float) -> int:
    """Whole candles from ``earlier`` to ``later`` (seconds), to the nearest candle."""
    return round((later - earlier) / bar_s)


def decide(
    *,
    symbol: str,
    prob_up: float | None,
    price: float,
    position: Position | None,
    open_positions: int,
    paused: bool,
    limits: RiskLimits,
    now: float,
    last_exit_at: float | None = None,
) -> Decision | None:
    """What to do for `symbol` at `price` at time `now` (seconds, the decision candle's close).

    prob_up None = no signal (the symbol is not ACTIVE or has no model): exits only.
    Protective exits (stop loss, max_hold_bars) apply to any position at once; a
    signal exit waits until the position is ``min_hold_bars`` old. Entries need
    a signal at or above ``entry_threshold``, a free position slot, the bot not
    paused and ``cooldown_bars`` since the symbol's last exit (``last_exit_at``).
    The gap between the entry and exit thresholds, the minimum hold and the
    cooldown keep a model whose P(up) hovers near a threshold from paying a round
    trip on every candle.
    """
    if position is not None:
        stop = position.entry_price * (1 - limits.stop_loss_pct / 100)
        if price <= stop:
            return Decision(
                intent=Intent.STOP_LOSS,
                amount=position.amount,
                why=f"price {price:.6g} <= stop {stop:.6g} ({limits.stop_loss_pct:g}% below entry)",
            )
        held = bars_between(position.opened_at, now, limits.bar_s)
        if limits.max_hold_bars and held >= limits.max_hold_bars:
            return Decision(
                intent=Intent.EXIT,
                amount=position.amount,
                why=f"held {held} candles >= max hold {limits.max_hold_bars}",
            )
        if (
            prob_up is not None
            and prob_up <= limits.exit_threshold
            and held >= limits.min_hold_bars
        ):
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
    if (
        limits.cooldown_bars
        and last_exit_at is not None
        and bars_between(last_exit_at, now, limits.bar_s) < limits.cooldown_bars
    ):
        return None
    return Decision(
        intent=Intent.ENTRY,
        amount=limits.stake_quote / price,
        why=f"P(up) {prob_up:.3f} >= entry threshold {limits.entry_threshold:.3f}",
    )
