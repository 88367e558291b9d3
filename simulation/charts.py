"""A summary's images for the HTML report: matplotlib (Agg backend, no display needed),
each returned as a base64 PNG: the equity curve beside buy-and-hold, each symbol's
lifecycle as coloured state bands with its trainings marked, and each traded symbol's
price with its entries and exits.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from core.text import signed_percent
from simulation.summary import Summary

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
            label=f"buy and hold ({signed_percent(summary.buy_hold_return_pct)})",
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
            f"buy and hold {signed_percent(sym.buy_hold_return_pct)}",
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
