"""Restart reconciliation and order recording: the I/O around policy/reconcile.py's decisions.

`record_order` applies one exchange answer to the ledger in one transaction (the
trader uses it for every answer); `reconcile` looks every unresolved or resting
order up through the `ExchangePort`, so it covers every exchange adapter, and
checks positions against balances. What to make of each answer is decided by the
pure functions of `policy.reconcile`.
"""

from __future__ import annotations

import msgspec

from core.timefmt import format_utc
from exchange.port import ExchangePort
from exchange.types import Balance, Order
from policy.reconcile import (
    NEVER_SENT,
    ReconcileReport,
    apply_fill,
    check_position,
    order_changes,
    position_of,
    position_row,
    resolve_order,
    still_in_flight,
)
from policy.risk import Position
from storage.ledger import (
    LIVE,
    UNRESOLVED,
    FillRow,
    Ledger,
    OrderRow,
    OrderState,
    fill_between,
)


class Recorded(msgspec.Struct, frozen=True):
    row: OrderRow
    position: Position | None  # the symbol's position afterwards
    fill: FillRow | None = None  # what executed with this answer, at its price and fee


def record_order(ledger: Ledger, client_order_id: str, order: Order, now: float) -> Recorded:
    """Record the exchange's answer for an order, and its fill in the position, atomically."""
    with ledger.transaction():
        before = ledger.get(client_order_id)
        if before is None:
            raise KeyError(client_order_id)
        if before.state is OrderState.NEW:  # it evidently was sent
            ledger.update(client_order_id, state=OrderState.SENT, updated_at=now)
        row = ledger.update(client_order_id, **order_changes(order, now))
        held = ledger.positions().get(row.symbol)
        position = position_of(held) if held is not None else None
        fill = fill_between(before, row)
        if fill is None:
            return Recorded(row=row, position=position)
        # realized PnL is not kept here: policy.results.TradeBook derives it from the fills
        position, _ = apply_fill(
            position, row.symbol, row.side, fill.amount, fill.price, fill.fee_quote, now
        )
        ledger.set_position(row.symbol, position_row(position) if position else None)
        return Recorded(row=row, position=position, fill=fill)


def reconcile(
    exchange: ExchangePort,
    ledger: Ledger,
    now: float,
    *,
    settle_s: float = 0.0,
    retry: bool = False,
) -> ReconcileReport:
    """Resolve unknown orders, refresh resting ones, check positions against balances.

    A SENT order the exchange does not have, sent less than `settle_s` ago (the
    exchange's recvWindow: it may still arrive), stays SENT and is counted in
    `report.in_flight`, with `report.retry_at` the time to look again (on the
    caller's clock: nothing here waits). The fills it records are in `report.fills`.

    At the restart (`retry` False) the whole ledger is checked. A `retry` (the ledger
    agreed with the exchange since the start; then an order's outcome became unknown,
    and the caller looks again every candle until it is known) asks only what can have
    changed since: the unresolved and resting orders, and the positions held and of those
    orders' symbols. The scan of every order resting on the exchange (for orders not in
    the ledger) and the check of every symbol ever traded are not repeated.

    Raises ExchangeError if the exchange cannot be asked; what was resolved until
    then stays recorded, and running it again continues from there.
    """
    when = "after an unknown outcome" if retry else "at the restart"
    report = ReconcileReport(resolved={}, mismatches=[], notes=[])
    looked_up: set[str] = set()
    for row in ledger.orders(*UNRESOLVED, *LIVE):
        looked_up.add(row.symbol)
        found = exchange.fetch_order(row.symbol, row.client_order_id)
        until = still_in_flight(row, now, settle_s) if found is None else None
        if until is not None:
            report.in_flight += 1
            report.retry_at = max(report.retry_at or until, until)
            report.notes.append(
                f"{row.symbol}: order {row.client_order_id} ({row.intent}) was sent "
                f"{now - row.updated_at:.1f} s ago and is not on the exchange yet; it may still "
                f"arrive until {format_utc(until, seconds=True)} (recvWindow): looked up again then"
            )
            continue
        resolution = resolve_order(row, found, when)
        if resolution.note:
            (report.mismatches if resolution.mismatch else report.notes).append(resolution.note)
        if row.state in UNRESOLVED:
            report.resolved[resolution.outcome] = report.resolved.get(resolution.outcome, 0) + 1
        elif resolution.outcome != "unchanged":
            report.refreshed += 1
        if resolution.outcome == NEVER_SENT:
            ledger.update(
                row.client_order_id,
                state=OrderState.REJECTED,
                error=f"{NEVER_SENT}: not on the exchange {when}",
                updated_at=now,
            )
        elif resolution.outcome == "vanished":
            ledger.update(
                row.client_order_id,
                state=OrderState.CANCELED,
                error=f"no longer on the exchange {when}",
                updated_at=now,
            )
        elif found is not None and resolution.outcome not in ("unchanged", "conflict"):
            recorded = record_order(ledger, row.client_order_id, found, now)
            if recorded.fill is not None:
                report.fills.append(recorded.fill)

    if retry:
        _check_positions(exchange, ledger, report, looked_up)
        return report
    known = {r.client_order_id for r in ledger.orders(*LIVE)}
    resting = exchange.fetch_open_orders()
    for order in resting:
        if order.client_order_id not in known and ledger.get(order.client_order_id) is None:
            report.mismatches.append(
                f"{order.symbol}: open {order.side} order {order.client_order_id} on the "
                "exchange is not in the ledger: left alone (placed by someone else?)"
            )
    report.open_orders = len(resting)

    _check_positions(exchange, ledger, report)
    return report


def _check_positions(
    exchange: ExchangePort,
    ledger: Ledger,
    report: ReconcileReport,
    symbols: set[str] | None = None,
) -> None:
    """Compare the positions held, and those of `symbols` (None: of every symbol ever
    traded, which reads every order of the ledger), with the exchange's balances."""
    balances: dict[str, Balance] = exchange.fetch_balances()
    markets = exchange.load_markets()
    positions = ledger.positions()
    if symbols is None:
        symbols = {r.symbol for r in ledger.orders() if r.filled > 0}
    for symbol in sorted(set(positions) | symbols):
        base = symbol.partition("/")[0]
        held = balances[base].total if base in balances else 0.0
        ours = positions[symbol].amount if symbol in positions else 0.0
        market = markets.get(symbol)
        check = check_position(symbol, ours, held, market.amount_step if market else 0.0)
        if check.mismatch:
            report.mismatches.append(check.mismatch)
        if check.note:
            report.notes.append(check.note)
        if check.position_amount is None:
            if symbol in positions:
                ledger.set_position(symbol, None)
        elif symbol in positions:
            report.positions += 1
            if check.position_amount != ours:
                ledger.set_position(
                    symbol,
                    msgspec.structs.replace(positions[symbol], amount=check.position_amount),
                )
