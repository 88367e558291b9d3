"""The trader's lines for people that are more than a format string: pure text.

Tested directly (tests/test_trader_logs.py, tests/test_market_data.py); the trader
logs them or answers with them.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.text import plural
from exchange.types import Order, OrderStatus


def closed_all_detail(closed: Sequence[bool]) -> str:
    """The detail of the answer to `close-all`, from whether each position's close did."""
    return f"closed {plural(sum(closed), 'position')}"


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
