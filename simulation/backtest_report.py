"""How a backtest's summary is shown: the terminal digest and the report's returns table."""

from __future__ import annotations

import html
from pathlib import Path

from simulation.backtest_summary import BacktestSummary, SymbolResult
from simulation.report import by_trigger_text, health_lines, training_line


def format_backtest(summary: BacktestSummary, out: Path | None = None) -> str:
    """The digest printed at the end of a backtest."""
    s = summary
    quote = s.quote
    checks = by_trigger_text(s.coverage_checks_by_trigger)
    reloads = by_trigger_text(s.model_reloads_by_trigger)
    lines = [
        f"Backtest of {s.market_symbols} symbols ({s.exchange or 'stored'} {s.timeframe} "
        f"candles) from {s.start} to {s.end}: {s.days:g} days, {s.candles:,} candles "
        f"in {s.wall_seconds:.1f} s ({s.candles_per_second:,.0f} candles/s, "
        f"{s.speedup:,.0f}x real time)",
        f"coverage_checks: {s.coverage_checks} ({checks}); universe_refreshes: "
        f"{s.universe_refreshes}",
        f"model_reloads: {s.model_reloads} ({reloads}); models_published: {s.models_published}",
        *health_lines(s),
        f"orders: {s.orders} (fills {s.fills}, refused {s.orders_failed}); round_trips: "
        f"{s.round_trips}; fees: {s.fees_quote:.8g} {quote}; signals: {s.signals}",
        f"net_return: {s.net_return_pct:+.2f}% (equity {s.final_equity:.8g} from "
        f"{s.starting_balance:g}); buy_hold_return: {s.buy_hold_return_pct:+.2f}% "
        f"(equal weights); max_drawdown: {100 * s.max_drawdown:.2f}%",
        training_line(s),
        "",
        f"{'symbol':<10} {'final state':<16} {'trainings':>9} {'active from':<17} "
        f"{'orders':>6} {'trips':>5} {'net %':>7} {'hold %':>7} {'candles':>7} {'gaps':>4}",
    ]
    for name, sym in s.symbols.items():
        active = (sym.became_active_at or "-").removesuffix(" UTC")[:16]
        r = sym if isinstance(sym, SymbolResult) else None
        lines.append(
            f"{name:<10} {sym.final_state:<16} {sym.trainings_started:>9} {active:<17} "
            f"{sym.orders:>6} {r.round_trips if r else 0:>5} "
            f"{r.net_return_pct if r else 0.0:>+7.2f} {r.buy_hold_return_pct if r else 0.0:>+7.2f} "
            f"{r.candles if r else 0:>7} {r.missing_candles if r else 0:>4}"
        )
    if out is not None:
        lines += ["", f"Report: {out / 'report.html'}  (summary.json, backtest.log)"]
    return "\n".join(lines)


def returns_html(summary: BacktestSummary) -> str:
    """The report's returns table: each symbol against holding it, and the totals."""
    e = html.escape
    rows = []
    for name, sym in summary.symbols.items():
        if not isinstance(sym, SymbolResult):
            continue
        rows.append(
            f"<tr><td>{e(name)}</td><td>{e(sym.final_state)}</td><td>{sym.orders}</td>"
            f"<td>{sym.round_trips}</td><td>{sym.fees_quote:.8g}</td>"
            f"<td>{sym.net_return_pct:+.3f}%</td><td>{sym.buy_hold_return_pct:+.3f}%</td>"
            f"<td>{e(sym.first_trade_at or '-')}</td><td>{sym.candles}</td>"
            f"<td>{sym.missing_candles}</td></tr>"
        )
    s = summary
    rows.append(
        f"<tr><th>total</th><td></td><td>{s.orders}</td><td>{s.round_trips}</td>"
        f"<td>{s.fees_quote:.8g}</td><td>{s.net_return_pct:+.3f}%</td>"
        f"<td>{s.buy_hold_return_pct:+.3f}%</td><td></td><td>{s.candles}</td><td></td></tr>"
    )
    return (
        f"<h2>Returns</h2><p>{s.exchange} {e(s.timeframe)} candles from {e(s.source)}, "
        f"{e(s.start)} to {e(s.end)}. Net return: the symbol's profit (fees paid, what is "
        "still held valued at the window's last close) as a share of the starting balance; "
        "buy and hold: its last close over its first open in the window (total: the "
        "symbols' mean). Missing candles are gaps in the data: skipped, never "
        "interpolated.</p>\n<table>\n<tr><th>symbol</th><th>final state</th><th>orders</th>"
        "<th>round trips</th><th>fees</th><th>net return</th><th>buy and hold</th>"
        "<th>first trade</th><th>candles</th><th>missing</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>"
    )
