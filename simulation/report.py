"""How a simulation's summary is shown: summary.json, report.html, the terminal digest.

Not an actor, and independent of the actors: it renders a `Summary` (built by
`simulation.summary.summarize`). The report is one self-contained HTML file with
three matplotlib images (`simulation.charts`) embedded as base64 PNG: the equity
curve beside buy-and-hold, each symbol's lifecycle as coloured state bands with its
trainings marked, and each traded symbol's price with its entries and exits.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import msgspec

from core.text import percent, signed_percent
from simulation.charts import equity_png, lifecycle_png, prices_png
from simulation.summary import GateSummary, Summary

# --- writing ------------------------------------------------------------------------


def write(
    out: Path, summary: Summary, *, title: str | None = None, extra_html: str = ""
) -> tuple[Path, Path]:
    """Write `out/summary.json` and `out/report.html`; returns their paths.

    `title` replaces the simulation's heading; `extra_html` goes before the invariants
    (a backtest's returns table). A `Summary` subclass's own fields are in the JSON too.
    """
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "summary.json"
    json_path.write_bytes(msgspec.json.format(msgspec.json.encode(summary), indent=2) + b"\n")
    html_path = out / "report.html"
    html_path.write_text(render_html(summary, title=title, extra_html=extra_html), encoding="utf-8")
    return json_path, html_path


def format_summary(summary: Summary, out: Path | None = None) -> str:
    """The digest printed at the end of a run."""
    s = summary
    by_trigger = by_trigger_text(s.model_reloads_by_trigger)
    checks = by_trigger_text(s.coverage_checks_by_trigger)
    lines = [
        f"Simulated {s.days:g} days from {s.start} ({s.market_symbols} symbols, seed {s.seed}) "
        f"in {s.wall_seconds:.1f} s: {s.speedup:,.0f}x real time",
        f"coverage_checks: {s.coverage_checks} ({checks})",
        f"universe_refreshes: {s.universe_refreshes}",
        f"model_reloads: {s.model_reloads} ({by_trigger}); models_published: {s.models_published}",
        f"heartbeats: {s.heartbeats}",
        *health_lines(s),
        f"orders: {s.orders} (fills {s.fills}, refused {s.orders_failed}); signals: {s.signals}",
        f"final_equity: {s.final_equity:,.2f} (from {s.starting_balance:,.2f}, "
        f"{s.return_pct:+.2f}%); max_drawdown: {100 * s.max_drawdown:.2f}% "
        f"({s.max_drawdown_quote:,.2f})",
        f"round_trips: {s.round_trips} (win rate {percent(s.win_rate)}), net_pnl {s.net_pnl:+,.2f} "
        f"after fees_quote {s.fees_quote:,.2f}; trades_per_day: {s.trades_per_day:,.1f}; "
        f"buy_hold_return_pct: {signed_percent(s.buy_hold_return_pct)}",
        training_line(s),
        "",
        f"{'symbol':<12} {'final state':<16} {'trainings':>9} {'failed':>6} "
        f"{'active from':<20} {'orders':>6} {'per day':>7} {'trips':>5} {'win':>6} "
        f"{'fees':>8} {'net pnl':>9} {'pnl':>9} {'hold %':>7}  gate",
    ]
    for name, sym in s.symbols.items():
        active = (sym.became_active_at or "-").removesuffix(" UTC")[:16]
        win = sym.wins / sym.round_trips if sym.round_trips else None
        lines.append(
            f"{name:<12} {sym.final_state:<16} {sym.trainings_started:>9} "
            f"{sym.trainings_failed:>6} {active:<20} {sym.orders:>6} {sym.trades_per_day:>7.1f} "
            f"{sym.round_trips:>5} {percent(win):>6} {sym.fees_quote:>8.2f} {sym.net_pnl:>9.2f} "
            f"{sym.pnl:>9.2f} {signed_percent(sym.buy_hold_return_pct):>7}  {gate_text(sym.gate)}"
        )
    if out is not None:
        lines += ["", f"Report: {out / 'report.html'}  (summary.json, simulation.log)"]
    return "\n".join(lines)


def by_trigger_text(counts: Mapping[str, int]) -> str:
    """`startup 1, tick 5740`: what set off each of a count's events."""
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def health_lines(s: Summary) -> list[str]:
    """The digest's verdict: restarts (and an early stop), duplicate trainings, and the
    invariant violations (the first 20 listed)."""
    return [
        f"actor_restarts: {s.actor_restarts}"
        + (f"; the bot STOPPED early: {s.stopped_early}" if s.stopped_early else ""),
        f"duplicate_trainings: {s.duplicate_trainings}",
        f"invariant_violations: {len(s.invariant_violations) or 'none'}",
        *(f"  - {v}" for v in s.invariant_violations[:20]),
    ]


def training_line(s: Summary) -> str:
    return (
        f"training: window {s.training.window_days:g} days, max_iter {s.training.max_iter}, "
        f"{s.training.pool} pool x{s.training.workers}"
    )


def gate_text(gate: GateSummary | None) -> str:
    """`promoted v000003` / `rejected: AUC 0.49 < 0.5` / `-` (nothing trained in the run)."""
    if gate is None:
        return "-"
    counts = f" ({gate.models_promoted} promoted, {gate.models_rejected} rejected)"
    if gate.models_promoted + gate.models_rejected == 1:
        counts = ""
    if gate.promoted:
        return f"promoted {gate.version or ''}".rstrip() + counts
    return f"rejected: {'; '.join(gate.reasons) or 'no edge'}{counts}"


# --- the HTML report ------------------------------------------------------------------


def render_html(summary: Summary, *, title: str | None = None, extra_html: str = "") -> str:
    s = summary
    title = title or f"Simulation: {s.days:g} days, {s.market_symbols} symbols, seed {s.seed}"
    e = html.escape
    figures = [
        ("Simulated days", f"{s.days:g} from {s.start}"),
        ("Symbols in the market", str(s.market_symbols)),
        ("Wall time", f"{s.wall_seconds:.1f} s ({s.speedup:,.0f}x real time)"),
        ("Coverage checks", f"{s.coverage_checks} {s.coverage_checks_by_trigger}"),
        ("Universe refreshes", str(s.universe_refreshes)),
        ("Model reloads", f"{s.model_reloads} {s.model_reloads_by_trigger}"),
        ("Models published", str(s.models_published)),
        ("Heartbeats", str(s.heartbeats)),
        ("Actor restarts", str(s.actor_restarts)),
        ("Stopped early", s.stopped_early or "no"),
        ("Duplicate trainings", str(s.duplicate_trainings)),
        ("Orders", f"{s.orders} (fills {s.fills}, refused {s.orders_failed})"),
        (
            "Final equity",
            f"{s.final_equity:,.2f} (from {s.starting_balance:,.2f}, {s.return_pct:+.2f}%)",
        ),
        ("Buy and hold", f"{signed_percent(s.buy_hold_return_pct)} (every symbol, equal shares)"),
        ("Fees paid", f"{s.fees_quote:,.2f}"),
        (
            "Round trips",
            f"{s.round_trips}, win rate {percent(s.win_rate)}, net {s.net_pnl:+,.2f} after fees",
        ),
        ("Trades per day", f"{s.trades_per_day:,.1f}"),
        ("Max drawdown", f"{100 * s.max_drawdown:.2f}% ({s.max_drawdown_quote:,.2f})"),
        (
            "Training",
            f"window {s.training.window_days:g} days, max_iter {s.training.max_iter}, "
            f"{s.training.pool} pool x{s.training.workers}. {s.training.note}",
        ),
    ]
    rows = "\n".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in figures)
    if s.invariant_violations:
        items = "".join(f"<li>{e(v)}</li>" for v in s.invariant_violations)
        violations = f'<p class="bad">{len(s.invariant_violations)} violations:</p><ul>{items}</ul>'
    else:
        violations = '<p class="good">None: every invariant held for the whole run.</p>'
    symbol_rows = "\n".join(
        "<tr>"
        f"<td>{e(name)}</td><td>{e(sym.final_state)}</td><td>{sym.trainings_started}</td>"
        f"<td>{sym.trainings_failed}</td><td>{e(sym.became_active_at or '-')}</td>"
        f"<td>{sym.orders}</td><td>{sym.trades_per_day:,.1f}</td><td>{sym.signals}</td>"
        f"<td>{sym.round_trips}</td>"
        f"<td>{percent(sym.wins / sym.round_trips if sym.round_trips else None)}</td>"
        f"<td>{sym.fees_quote:,.2f}</td><td>{sym.net_pnl:,.2f}</td><td>{sym.pnl:,.2f}</td>"
        f"<td>{signed_percent(sym.buy_hold_return_pct)}</td><td>{e(gate_text(sym.gate))}</td>"
        "</tr>"
        for name, sym in s.symbols.items()
    )
    prices = prices_png(s)
    price_section = (
        f'<img alt="prices with entries and exits" src="data:image/png;base64,{prices}">'
        if prices
        else "<p>No symbol had prices in the run.</p>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>tradeactors: {e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; }}
td:nth-child(n+3) {{ font-variant-numeric: tabular-nums; }}
.good {{ color: #2d7a3e; }} .bad {{ color: #b00020; font-weight: bold; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{e(title)}</h1>
<table>{rows}</table>
{extra_html}
<h2>Invariants</h2>
{violations}
<h2>Equity</h2>
<img alt="equity curve" src="data:image/png;base64,{equity_png(s)}">
<h2>Symbol lifecycle</h2>
<img alt="symbol lifecycle timeline" src="data:image/png;base64,{lifecycle_png(s)}">
<h2>Symbols</h2>
<table>
<tr><th>symbol</th><th>final state</th><th>trainings</th><th>failed</th><th>active from</th>
<th>orders</th><th>per day</th><th>signals</th><th>round trips</th><th>win rate</th>
<th>fees</th><th>net pnl</th><th>pnl</th><th>buy and hold</th><th>gate</th></tr>
{symbol_rows}
</table>
<p>net pnl: what was sold, after the fees of both fills; pnl: also what is still held, at the
last close; buy and hold: bought at the first price of the run and sold at the last, after fees
and slippage; gate: the promotion gate's newest verdict.</p>
<h2>Prices, entries and exits</h2>
{price_section}
</body></html>
"""
