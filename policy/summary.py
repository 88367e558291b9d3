"""The run summary the trader logs once per candle: money first, then what the symbols do.

`Summary: equity 10,012.40 USDT, realized PnL +10.12 USDT, unrealized PnL +2.28 USDT,
1 open position; symbols: 1 active, 2 training, 6 blocked (4 no edge, 2 short history)`

Pure: the trader gives it what it holds (no I/O), and a test gives it numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from core.text import plural
from policy.lifecycle import SymbolState

# why a blocked symbol is not trading, in the words of the summary (NEW is about to train)
BLOCKED_WORDS: dict[SymbolState, str] = {
    SymbolState.NO_EDGE: "no edge",
    SymbolState.BLOCKED_HISTORY: "short history",
    SymbolState.RETRY_WAIT: "retry wait",
    SymbolState.BLOCKED_FAILED: "failed",
    SymbolState.BLOCKED_MANUAL: "blocked by admin",
}


def summary_line(
    *,
    equity: float,
    quote: str,
    realized_pnl: float,
    unrealized_pnl: float,
    open_positions: int,
    states: Iterable[SymbolState],
    paused: bool = False,
) -> str:
    """One line: equity (`unknown` before the first balances), PnL, positions, symbols."""
    count = Counter(states)
    blocked = {BLOCKED_WORDS[st]: n for st, n in count.items() if st in BLOCKED_WORDS}
    symbols = [
        f"{count[SymbolState.ACTIVE]} active",
        f"{count[SymbolState.TRAINING] + count[SymbolState.NEW]} training",
        f"{sum(blocked.values())} blocked"
        + (
            " (" + ", ".join(f"{n} {why}" for why, n in sorted(blocked.items())) + ")"
            if blocked
            else ""
        ),
    ]
    money = "equity unknown" if math.isnan(equity) else f"equity {equity:,.2f} {quote}"
    return (
        f"Summary: {money}, realized PnL {realized_pnl:+,.2f} {quote}, unrealized PnL "
        f"{unrealized_pnl:+,.2f} {quote}, {plural(open_positions, 'open position')}"
        f"{', trading paused' if paused else ''}; symbols: {', '.join(symbols)}"
    )
