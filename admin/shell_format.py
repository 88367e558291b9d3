"""How the admin shell shows the bot's replies: the status and symbol tables, one line per
watched event (pure; tested without a server).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from admin.protocol import (
    AnyAdminReply,
    ErrorReply,
    Reply,
    StatusReply,
    SymbolsReply,
    TrainersReply,
    WatchEvent,
)
from core.text import percent, plural
from core.timefmt import format_utc
from policy.lifecycle import SymbolRecord


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None
) -> str:
    """Columns padded to their widest cell; the last column cut to `width` if given."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False)]
        line = "  ".join([*cells, row[-1]]).rstrip()
        if width is not None and len(line) > width:
            line = line[: max(width - 1, 0)] + "…"
        lines.append(line)
    return "\n".join(lines)


def fmt_time(t: float | None, seconds: bool = False) -> str:
    if t is None:
        return "-"
    return format_utc(t, seconds=seconds, zone=False)


def fmt_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"


def fmt_num(x: float) -> str:
    return f"{x:.6g}"


def _when(record: SymbolRecord) -> str:
    """The time that matters for a waiting symbol: eligible at, or next retry at."""
    if record.state == "NO_EDGE":
        return fmt_time(record.retry_at)
    return fmt_time(record.eligible_at or record.next_attempt_at)


def why(record: SymbolRecord) -> str:
    """Why the symbol is or is not traded: its reason, and a rejected retrain it trades past."""
    if record.state == "ACTIVE" and record.gate_reasons:
        rejected = "; ".join(record.gate_reasons)
        return f"{record.reason}; its newest retrain was rejected ({rejected})"
    return record.reason


def format_symbols(records: Sequence[SymbolRecord], width: int | None = None) -> str:
    if not records:
        return "No symbols yet (the bot is still starting)."
    rows = [
        [r.symbol, r.state, fmt_time(r.since), _when(r), r.model_version or "-", why(r)]
        for r in records
    ]
    headers = ["SYMBOL", "STATE", "SINCE (UTC)", "ELIGIBLE/RETRY", "MODEL", "REASON"]
    return format_table(headers, rows, width)


def format_status(reply: StatusReply, width: int | None = None) -> str:
    q = reply.quote
    equity = "unknown (exchange not answering)" if reply.equity is None else f"{reply.equity:.2f}"
    head = [
        f"Bot time {fmt_time(reply.now)} UTC, trading "
        + ("PAUSED (no new entries)" if reply.paused else "running"),
        f"Equity {equity} {q}, realized PnL {reply.realized_pnl:+.2f} {q}, "
        f"{reply.orders_placed} orders placed, last candle "
        + (fmt_time(reply.last_tick_at, seconds=True) if reply.last_tick_at else "not yet"),
        f"Trades: {reply.round_trips} round trips, win rate {percent(reply.win_rate)}, "
        f"fees paid {reply.fees_quote:.2f} {q} (realized PnL is after them)",
    ]
    models = {m.symbol: m for m in reply.models}
    rows = []
    for r in reply.symbols:
        m = models.get(r.symbol)
        rows.append(
            [
                r.symbol,
                r.state,
                _when(r),
                m.version if m else (r.model_version or "-"),
                fmt_age(reply.now - m.trained_at) if m else "-",
                percent(m.metrics.get("accuracy")) if m else "-",
                _num3(m.metrics.get("auc")) if m else "-",
                why(r),
            ]
        )
    headers = ["SYMBOL", "STATE", "ELIGIBLE/RETRY", "MODEL", "AGE", "ACC", "AUC", "REASON"]
    parts = [
        "\n".join(head),
        format_table(headers, rows, width) if rows else "No symbols yet.",
    ]
    if reply.positions:
        prow = [
            [p.symbol, fmt_num(p.amount), f"{fmt_num(p.entry_price)} {q}", fmt_time(p.opened_at)]
            for p in reply.positions
        ]
        parts.append(
            f"Open positions: {len(prow)}\n"
            + format_table(["SYMBOL", "AMOUNT", "ENTRY", "OPENED (UTC)"], prow, width)
        )
    else:
        parts.append("Open positions: none")
    parts.append("Trainers running: " + (", ".join(reply.trainers) or "none"))
    return "\n\n".join(parts)


def _num3(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def format_event(event: Mapping[str, Any]) -> str:
    """One watched event as one line: time, kind, what happened."""
    kind = str(event.get("type", "?"))
    e = dict(event)
    at = e.get("at")
    when = fmt_time(at, seconds=True) if isinstance(at, int | float) else "-"
    match kind:
        case "SymbolTransition":
            text = f"{e['symbol']}: {e['old']} -> {e['new']} ({e['reason']})"
        case "OrderPlaced":
            text = (
                f"{e['symbol']}: {str(e['side']).upper()} {fmt_num(e['amount'])} at "
                f"{fmt_num(e['price'])} ({e['intent']}: {e['why']}), order {e['client_order_id']}"
            )
            if e.get("net_pnl") is not None:
                text += f", round trip {e['net_pnl']:+.2f} ({e['return_pct']:+.2f} %)"
        case "OrderFailed":
            text = f"{e['symbol']}: {e['intent']} order {e['client_order_id']} failed: {e['error']}"
        case "Heartbeat":
            text = (
                f"{plural(e['active'], 'active symbol')}, {e['blocked']} blocked, "
                f"{plural(e['open_positions'], 'open position')}"
            )
        case "TrainerStarted":
            text = f"{e['symbol']}: trainer started"
        case "TrainerFinished":
            text = f"{e['symbol']}: trainer {'done' if e['ok'] else 'failed'}: {e['detail']}"
        case "ModelsReloaded":
            symbols = ", ".join(e["symbols"]) or "no change"
            text = f"models {e['version'] or '-'} ({e['trigger']}): {symbols}"
        case "CoverageChecked":
            text = (
                f"{e['trigger']}: {e['symbols']} symbols, {e['active']} active, "
                f"{e['blocked']} blocked"
            )
        case "UniverseRefreshed":
            added = f", added {', '.join(e['added'])}" if e["added"] else ""
            removed = f", removed {', '.join(e['removed'])}" if e["removed"] else ""
            text = f"{e['size']} symbols{added}{removed}"
        case "SignalProduced":
            text = f"{e['symbol']}: P(up) {e['prob_up']:.3f}"
        case "GateDecided":
            if e["promoted"]:
                text = f"{e['symbol']}: model {e['version']} passed the promotion gate"
            else:
                text = f"{e['symbol']}: model rejected: {'; '.join(e['reasons']) or 'no edge'}"
        case "ActorRestarted":
            text = f"{e['name']} restarted after: {e['error']}"
        case _:
            text = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("type", "at"))
    return f"{when}  {kind:<17} {text}"


def format_reply(reply: AnyAdminReply, width: int | None = None) -> str:
    match reply:
        case StatusReply():
            return format_status(reply, width)
        case SymbolsReply(symbols=records):
            return format_symbols(records, width)
        case TrainersReply(symbols=symbols):
            return "Trainers running: " + (", ".join(symbols) or "none")
        case Reply(ok=True, detail=detail):
            return detail
        case Reply(detail=detail):
            return f"refused: {detail}"
        case ErrorReply(error=error):
            return f"error: {error}"
        case WatchEvent(event=event, dropped=dropped):
            lost = f"  ({dropped} events dropped before this one)" if dropped else ""
            return format_event(event) + lost
    return str(reply)  # pragma: no cover - every reply type is matched above
