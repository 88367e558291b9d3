"""Placing an order, ledger first: recorded, then sent, then its answer recorded.

The three steps are apart so that the send, the only one that waits on the
exchange, can run outside an actor's mailbox while the ledger is written by the
actor alone (one writer):

1. `record_intent`: the order is written NEW under its client order id (derived
   from symbol, candle and intent), then marked SENT, before the exchange sees
   it. A client id already in the ledger is never sent again.
2. `send`: `create_order`, touching nothing else; the answer, a refusal or an
   unknown outcome comes back as `Sent`.
3. the answer is recorded with its fill and the position in one transaction
   (`execution.reconcile.record_order`); a refusal is recorded REJECTED by
   `record_refusal`; an unknown outcome leaves the order SENT until reconciliation
   looks it up.
"""

from __future__ import annotations

import msgspec

from exchange.port import ExchangePort
from exchange.types import ExchangeError, Order, OrderRejected, OrderRequest, Side
from storage.ledger import Ledger, OrderRow, OrderState


class Sent(msgspec.Struct, frozen=True):
    """What became of one `create_order`: the exchange's order, or why there is none."""

    order: Order | None = None
    error: str | None = None
    refused: bool = False  # the exchange said no: nothing traded (else: outcome unknown)


def record_intent(ledger: Ledger, row: OrderRow, now: float) -> OrderRequest | None:
    """Record `row` NEW, then SENT; the request to send, or None if its client order id is
    already in the ledger (the same decision is never sent twice)."""
    if not ledger.add_intent(row):
        return None
    ledger.update(row.client_order_id, state=OrderState.SENT, updated_at=now)
    return OrderRequest(
        symbol=row.symbol,
        side=Side(row.side),
        amount=row.amount,
        client_order_id=row.client_order_id,
    )


def send(exchange: ExchangePort, request: OrderRequest) -> Sent:
    """The exchange call alone (no ledger, no actor state: it may run in any thread)."""
    try:
        return Sent(order=exchange.create_order(request))
    except OrderRejected as exc:
        return Sent(error=str(exc), refused=True)
    except ExchangeError as exc:  # it may have reached the exchange
        return Sent(error=str(exc))


def record_refusal(ledger: Ledger, client_order_id: str, error: str, now: float) -> None:
    ledger.update(client_order_id, state=OrderState.REJECTED, error=error, updated_at=now)
