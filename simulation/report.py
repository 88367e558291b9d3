"""A simulation's summary and how it is shown: summary.json, report.html, the terminal digest.

Not an actor, and independent of the actors: it renders a `Summary` (built by
`simulation.summary.summarize`). The report is one self-contained HTML file with
three matplotlib images embedded as base64 PNG (Agg backend, no display needed):
the equity curve beside buy-and-hold, each symbol's lifecycle as coloured state
bands with its trainings marked, and each traded symbol's price with its entries
and exits.

Trade results (`simulation.trades`): `net_pnl` is what was sold made after the
fees of both fills; `pnl` also values what is still held at the last close;
`buy_hold_return_pct` buys at the first price of the run and sells at the last,
after a fee and the slippage on each fill (the run's: equal shares of every
symbol); `trades_per_day` counts fills per simulated day; `gate` is the promotion
gate's newest verdict on the symbol's models (null: none trained in the run).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import msgspec

from simulation.trades import Marker

WALL_FIELDS = ("wall_seconds", "speedup")  # the only summary fields that differ between runs


class SymbolSummary(msgspec.Struct, kw_only=True):
    final_state: str
    trainings_started: int
    trainings_failed: int
    became_active_at: str | None  # UTC, the first time it became ACTIVE
    orders: int  # sent (filled or refused)
    pnl: float  # quote: sells - buys - fees, what is still held valued at the last close
    signals: int
    timeline: list[tuple[float, str]]  # (hours since start, state entered)
    trainings: list[tuple[float, float | None, bool | None]]  # (start h, end h, ok)
    fees_quote: float = 0.0
    round_trips: int = 0
    wins: int = 0
    net_pnl: float = 0.0  # quote: what was sold, after both fills' fees
    trades_per_day: float = 0.0  # fills per simulated day
    buy_hold_return_pct: float | None = None
    gate: GateSummary | None = None
    rejections: list[float] = []  # hours when the gate rejected one of its models
    prices: list[tuple[float, float]] = []  # (hours since start, close), for the chart
    trades: list[Marker] = []  # every fill: [hours, side, price, round trip net PnL]


class GateSummary(msgspec.Struct, kw_only=True):
    """The promotion gate's newest verdict on a symbol's models, and how many passed or not."""

    promoted: bool
    reasons: list[str]  # why not, when rejected
    version: str | None  # the published version, when promoted
    models_promoted: int
    models_rejected: int


class TrainingSummary(msgspec.Struct, kw_only=True):
    window_days: float
    max_iter: int
    pool: str
    workers: int
    note: str


class Summary(msgspec.Struct, kw_only=True):
    start: str
    days: float
    seed: int
    market_symbols: int
    sim_seconds: float
    wall_seconds: float
    speedup: float
    steps: int  # times virtual time moved
    coverage_checks: int
    coverage_checks_by_trigger: dict[str, int]
    universe_refreshes: int  # including the load at startup
    model_reloads: int
    model_reloads_by_trigger: dict[str, int]
    models_published: int
    heartbeats: int
    actor_restarts: int  # permanent actors the supervisor restarted after a crash
    stopped_early: str | None  # why the supervisor stopped the bot before the end, if it did
    duplicate_trainings: int  # a trainer started for a symbol that already had one
    invariant_violations: list[str]
    orders: int
    orders_failed: int
    fills: int
    signals: int
    starting_balance: float
    final_equity: float
    max_drawdown: float  # fraction of the running peak of equity
    max_drawdown_quote: float
    training: TrainingSummary
    symbols: dict[str, SymbolSummary]
    equity_curve: list[tuple[float, float]]  # (hours since start, equity)
    return_pct: float = 0.0  # final equity against the starting balance
    net_pnl: float = 0.0  # quote: what was sold, after both fills' fees
    fees_quote: float = 0.0
    round_trips: int = 0
    win_rate: float | None = None  # None: no round trip
    buy_hold_return_pct: float | None = None
    trades_per_day: float = 0.0  # fills per simulated day
    buy_hold_curve: list[tuple[float, float]] = []  # (hours since start, value held)


def without_wall_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """The part of a decoded summary.json that is the same on every run of the same inputs."""
    return {k: v for k, v in summary.items() if k not in WALL_FIELDS}


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
    by_trigger = ", ".join(f"{k} {v}" for k, v in s.model_reloads_by_trigger.items())
    checks = ", ".join(f"{k} {v}" for k, v in s.coverage_checks_by_trigger.items())
    lines = [
        f"Simulated {s.days:g} days from {s.start} ({s.market_symbols} symbols, seed {s.seed}) "
        f"in {s.wall_seconds:.1f} s: {s.speedup:,.0f}x real time",
        f"coverage_checks: {s.coverage_checks} ({checks})",
        f"universe_refreshes: {s.universe_refreshes}",
        f"model_reloads: {s.model_reloads} ({by_trigger}); models_published: {s.models_published}",
        f"heartbeats: {s.heartbeats}",
        f"actor_restarts: {s.actor_restarts}"
        + (f"; the bot STOPPED early: {s.stopped_early}" if s.stopped_early else ""),
        f"duplicate_trainings: {s.duplicate_trainings}",
        f"invariant_violations: {len(s.invariant_violations) or 'none'}",
        *(f"  - {v}" for v in s.invariant_violations[:20]),
        f"orders: {s.orders} (fills {s.fills}, refused {s.orders_failed}); signals: {s.signals}",
        f"final_equity: {s.final_equity:,.2f} (from {s.starting_balance:,.2f}, "
        f"{s.return_pct:+.2f}%); max_drawdown: {100 * s.max_drawdown:.2f}% "
        f"({s.max_drawdown_quote:,.2f})",
        f"round_trips: {s.round_trips} (win rate {_rate(s.win_rate)}), net_pnl {s.net_pnl:+,.2f} "
        f"after fees_quote {s.fees_quote:,.2f}; trades_per_day: {s.trades_per_day:,.1f}; "
        f"buy_hold_return_pct: {_signed(s.buy_hold_return_pct)}",
        f"training: window {s.training.window_days:g} days, max_iter {s.training.max_iter}, "
        f"{s.training.pool} pool x{s.training.workers}",
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
            f"{sym.round_trips:>5} {_rate(win):>6} {sym.fees_quote:>8.2f} {sym.net_pnl:>9.2f} "
            f"{sym.pnl:>9.2f} {_signed(sym.buy_hold_return_pct):>7}  {gate_text(sym.gate)}"
        )
    if out is not None:
        lines += ["", f"Report: {out / 'report.html'}  (summary.json, simulation.log)"]
    return "\n".join(lines)


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2f}%"


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

STATE_COLOURS = {
    "NEW": "#bdbdbd",
    "BLOCKED_HISTORY": "#f6c85f",
    "TRAINING": "#6f9fd8",
    "RETRY_WAIT": "#f4a259",
    "BLOCKED_FAILED": "#d1495b",
    "ACTIVE": "#59a96a",
    "BLOCKED_MANUAL": "#9b72aa",
    "RETIRED": "#555555",
    "NO_EDGE": "#c9b79c",
}


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def equity_png(summary: Summary) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    days = [h / 24 for h, _ in summary.equity_curve]
    equity = [e for _, e in summary.equity_curve]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.plot(days, equity, color="#2a6f97", linewidth=1.4, label="equity")
    if summary.buy_hold_curve:
        ax.plot(
            [h / 24 for h, _ in summary.buy_hold_curve],
            [v for _, v in summary.buy_hold_curve],
            color="#e07a1f",
            linewidth=1.1,
            linestyle="-.",
            label=f"buy and hold ({_signed(summary.buy_hold_return_pct)})",
        )
    ax.axhline(
        summary.starting_balance, color="#888888", linewidth=0.8, linestyle="--", label="start"
    )
    peak: list[float] = []
    for value in equity:
        peak.append(max(value, peak[-1]) if peak else value)
    ax.fill_between(days, equity, peak, color="#d1495b", alpha=0.25, label="drawdown")
    ax.set_xlabel("simulated days")
    ax.set_ylabel("equity (quote)")
    ax.set_xlim(0, summary.days)
    ax.set_title(
        f"Equity: {summary.final_equity:,.2f} at the end ({summary.return_pct:+.2f}%), "
        f"max drawdown {100 * summary.max_drawdown:.2f}%, fees paid {summary.fees_quote:,.2f}"
    )
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    data = _png(fig)
    plt.close(fig)
    return data


ZOOM_H = 3.0  # the lifecycle's left panel: the first hours, where startup trainings happen


def lifecycle_png(summary: Summary) -> str:
    """State bands per symbol: the first hours (left, when zoomed) and the whole run."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.transforms import blended_transform_factory

    names = list(summary.symbols)
    end_h = summary.sim_seconds / 3600
    zoom = end_h > 2 * ZOOM_H
    height = 0.42 * len(names) + 1.9
    if zoom:
        fig, (left, right) = plt.subplots(
            1, 2, figsize=(12, height), sharey=True, gridspec_kw={"width_ratios": [1, 3]}
        )
        panels = [(left, 1.0, ZOOM_H, f"first {ZOOM_H:g} hours"), (right, 24.0, end_h, "whole run")]
    else:
        fig, only = plt.subplots(figsize=(12, height))
        panels = [(only, 1.0, end_h, "whole run")]
    for ax, unit_h, span_h, title in panels:
        _draw_lifecycle(ax, summary, names, unit_h, end_h)
        ax.set_xlim(-0.01 * span_h / unit_h, span_h / unit_h)
        ax.set_xlabel("simulated hours" if unit_h == 1.0 else "simulated days")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    first, last = panels[0][0], panels[-1][0]
    first.set_yticks(range(len(names)), list(reversed(names)))
    first.set_ylim(-0.6, len(names) - 0.4)
    edge = blended_transform_factory(last.transAxes, last.transData)
    for row, name in enumerate(reversed(names)):
        sym = summary.symbols[name]
        runs = sym.trainings_started
        failed = f" ({sym.trainings_failed} failed)" if sym.trainings_failed else ""
        last.text(
            1.01,
            row,
            f"{runs} training{'' if runs == 1 else 's'}{failed}, {sym.orders} orders, "
            f"pnl {sym.pnl:+,.4g}",  # 4 digits: USDT or BTC amounts
            transform=edge,
            va="center",
            fontsize=8,
        )
    used = {state for sym in summary.symbols.values() for _, state in sym.timeline}
    handles: list[Any] = [
        Patch(color=colour, label=state) for state, colour in STATE_COLOURS.items() if state in used
    ]
    handles += [
        Line2D([], [], marker="^", color="black", linestyle="", label="trainer started"),
        Line2D([], [], marker="o", color="black", linestyle="", label="model published"),
        Line2D([], [], marker="x", color="#8b0000", linestyle="", label="training failed"),
        Line2D([], [], marker="s", color="#7a5c2e", linestyle="", label="model rejected"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("Symbol lifecycle", fontsize=12)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    data = _png(fig)
    plt.close(fig)
    return data


def _draw_lifecycle(
    ax: Any, summary: Summary, names: list[str], unit_h: float, end_h: float
) -> None:
    for row, name in enumerate(reversed(names)):
        sym = summary.symbols[name]
        for i, (start, state) in enumerate(sym.timeline):
            stop = sym.timeline[i + 1][0] if i + 1 < len(sym.timeline) else end_h
            ax.broken_barh(
                [(start / unit_h, max(stop - start, 0.0) / unit_h)],
                (row - 0.35, 0.7),
                facecolors=STATE_COLOURS.get(state, "#000000"),
            )
        rejected = set(sym.rejections)
        for began, ended, ok in sym.trainings:
            ax.plot(began / unit_h, row + 0.12, marker="^", color="black", markersize=6)
            if ended in rejected:
                ax.plot(ended / unit_h, row - 0.12, marker="s", color="#7a5c2e", markersize=5)
            elif ended is not None:
                ax.plot(
                    ended / unit_h,
                    row - 0.12,
                    marker="o" if ok else "x",
                    color="black" if ok else "#8b0000",
                    markersize=5 if ok else 7,
                    markeredgewidth=1.8,
                )


def prices_png(summary: Summary) -> str | None:
    """Each symbol's price with its fills: entries ^, exits v (green: the trip won)."""
    names = [n for n, sym in summary.symbols.items() if sym.prices]
    if not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(
        len(names), 1, figsize=(10, 1.7 * len(names) + 0.6), sharex=True, squeeze=False
    )
    for ax, name in zip(axes[:, 0], names, strict=True):
        sym = summary.symbols[name]
        ax.plot(
            [h / 24 for h, _ in sym.prices], [p for _, p in sym.prices], color="#555", lw=0.8
        )
        buys = [m for m in sym.trades if m.side == "buy"]
        ax.scatter(
            [m.hours / 24 for m in buys], [m.price for m in buys], marker="^", s=18, c="#2a6f97"
        )
        for won, colour in ((True, "#2d7a3e"), (False, "#b00020"), (None, "#888888")):
            exits = [
                m
                for m in sym.trades
                if m.side == "sell" and (None if m.net_pnl is None else m.net_pnl > 0) == won
            ]
            ax.scatter(
                [m.hours / 24 for m in exits], [m.price for m in exits], marker="v", s=18, c=colour
            )
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.grid(alpha=0.3)
        ax.set_title(
            f"{name}: {len(sym.trades)} fills, {sym.round_trips} round trips, "
            f"net {sym.net_pnl:+,.2f} after {sym.fees_quote:,.2f} fees; "
            f"buy and hold {_signed(sym.buy_hold_return_pct)}",
            fontsize=8,
            loc="left",
        )
    axes[-1, 0].set_xlabel("simulated days")
    axes[-1, 0].set_xlim(0, summary.days)
    fig.suptitle("Prices: entries ^, exits v (green won, red lost after fees)", fontsize=11)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


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
        ("Buy and hold", f"{_signed(s.buy_hold_return_pct)} (every symbol, equal shares)"),
        ("Fees paid", f"{s.fees_quote:,.2f}"),
        (
            "Round trips",
            f"{s.round_trips}, win rate {_rate(s.win_rate)}, net {s.net_pnl:+,.2f} after fees",
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
        f"<td>{_rate(sym.wins / sym.round_trips if sym.round_trips else None)}</td>"
        f"<td>{sym.fees_quote:,.2f}</td><td>{sym.net_pnl:,.2f}</td><td>{sym.pnl:,.2f}</td>"
        f"<td>{_signed(sym.buy_hold_return_pct)}</td><td>{e(gate_text(sym.gate))}</td>"
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
