"""Trading decisions for one symbol on one closed candle, and the client order id.

The rules themselves (``decide``, ``RiskLimits``, ``Position``, ``Intent``,
``Decision``) live in ``models/decision.py``, one layer down, because the
walk-forward evaluation of every training job trades its out-of-sample blocks
with the same function and ``models`` may not import ``policy``. They are
re-exported here, so the bot's code keeps one import for its decisions.

The client order id is derived from (symbol, candle time, intent) so that a
retry or a restart that decides the same thing again can never place a second
order: the exchange (and our ledger) see the same id.
"""

from __future__ import annotations

import hashlib

from config.settings import TradingSettings
from models.decision import (
    Decision,
    Intent,
    Position,
    RiskLimits,
    decide,
    limits_of,
)

__all__ = [
    "Decision",
    "Intent",
    "Position",
    "RiskLimits",
    "client_order_id",
    "decide",
    "limits_from_settings",
]


def limits_from_settings(trading: TradingSettings, bar_s: float) -> RiskLimits:
    """The trader's limits: the ``trading:`` settings on candles of ``bar_s`` seconds."""
    return limits_of(
        trading,
        bar_s=bar_s,
        stake_quote=trading.stake_quote,
        max_open_positions=trading.max_open_positions,
    )


def client_order_id(symbol: str, candle_time_ms: int, intent: Intent) -> str:
    """A stable id for (symbol, candle, intent): 'ta' + 30 hex chars (exchanges allow <= 36)."""
    digest = hashlib.sha256(f"{symbol}|{candle_time_ms}|{intent}".encode()).hexdigest()
    return "ta" + digest[:30]
