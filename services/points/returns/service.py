"""Returns: a refund takes back the order's points in proportion, or waits for its order.

`apply_returns` takes a run of `purchase.returned` events: a return whose order is known
is applied at once (its own lot first, then pending lots, then available ones; what the
lots cannot cover becomes debt); one whose order has not arrived is parked and applied
when the purchase comes (`apply_parked_return`, called by accrual). A return id seen
before is a no-op when the content matches, and dead-lettered when it does not.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from services.points.domain.book import Account, Changes, LedgerLine, ReturnRecord, StoredOrder
from services.points.domain.ledger import EntryKind
from services.points.domain.returns import ReturnedLine, apply_return
from services.points.ledger.service import as_of, emit_all
from services.points.returns.events import points_reversed
from services.points.uow import PointsUnitOfWork
from shared.contracts.envelope import EventEnvelope
from shared.contracts.pos import PurchaseReturned
from shared.errors import RejectedEvent

log = logging.getLogger(__name__)


async def apply_returns(
    uow: PointsUnitOfWork, events: Sequence[PurchaseReturned], points_topic: str
) -> None:
    """purchase.returned -> proportional reversal, or parked until the order arrives."""
    accounts = await uow.accounts.lock(e.customer_id for e in events)
    orders = await uow.orders.load(accounts, [e.data.order_id for e in events])
    known = await uow.returns.load(return_ids=[e.data.return_id for e in events])
    changes, emitted = Changes(), []
    for event in events:
        seen = known.get(event.data.return_id)
        if seen is not None:
            _check_same_return(event, seen)
            continue
        record = _return_record(event)
        known[record.return_id] = changes.new_returns[record.return_id] = record
        order = orders.get(record.order_id)
        if order is None:
            log.info("return %s parked: order %s not seen yet", record.return_id, record.order_id)
            continue
        mismatch = return_mismatch(order, record)
        if mismatch is not None:
            raise RejectedEvent(event, "return_mismatch", mismatch)
        account = accounts[event.customer_id]
        emitted += reverse_for_return(account, order, record, as_of(uow, event), changes)
    await uow.save(accounts, changes)
    emit_all(uow, points_topic, emitted)


async def unresolved_returns(
    uow: PointsUnitOfWork, limit: int, after: str | None = None, merchant_id: str | None = None
) -> list[ReturnRecord]:
    """Returns still waiting for their order, or rejected when it came (cursor: return id)."""
    return await uow.returns.unresolved(limit, after, merchant_id)


def return_mismatch(order: StoredOrder, record: ReturnRecord) -> str | None:
    """Why a return cannot belong to its order (None when it can)."""
    if order.customer_id != record.customer_id:
        return f"order {order.order_id} belongs to another customer"
    if order.currency != record.currency:
        return f"order {order.order_id} was paid in {order.currency}, refund is {record.currency}"
    return None


def apply_parked_return(
    account: Account, order: StoredOrder, record: ReturnRecord, as_of: datetime, changes: Changes
) -> list[EventEnvelope]:
    """A return that waited for its order: applied now, or rejected if it cannot belong."""
    changes.touched_returns[record.return_id] = record
    mismatch = return_mismatch(order, record)
    if mismatch is not None:
        record.status, record.rejection, record.applied_at = "rejected", mismatch, as_of
        return []
    return reverse_for_return(account, order, record, as_of, changes)


def reverse_for_return(
    account: Account, order: StoredOrder, record: ReturnRecord, as_of: datetime, changes: Changes
) -> list[EventEnvelope]:
    """Take back the order's points in proportion to everything refunded so far.

    From the order's own lot first, then pending lots, then available ones; what the lots
    cannot cover becomes debt, so the balance shows negative rather than losing a point.
    """
    outcome = apply_return(
        order.earning, record.refunded_minor, account.lots, as_of, account.debt, record.items
    )
    order.earning = outcome.order
    changes.touched_orders.add(order.order_id)
    changes.move_lots(account, outcome.clawback)
    account.debt = outcome.clawback.debt
    reversed_now = outcome.points_reversed
    record.status, record.points_reversed, record.applied_at = "applied", reversed_now, as_of
    if reversed_now == 0:
        return []
    changes.write(
        LedgerLine(
            account.customer_id,
            EntryKind.REVERSAL,
            -reversed_now,
            record.return_id,
            record.occurred_at,
            merchant_id=order.merchant_id,
            event_id=record.event_id,
        )
    )
    account.lifetime_earned -= reversed_now
    return [
        points_reversed(
            record.event_id,
            account,
            order,
            record.return_id,
            reversed_now,
            record.occurred_at,
            as_of,
        )
    ]


def _check_same_return(event: PurchaseReturned, seen: ReturnRecord) -> None:
    same = (
        seen.order_id == event.data.order_id
        and seen.customer_id == event.customer_id
        and seen.refunded_minor == event.data.refunded_minor
        and seen.items == _returned_lines(event)
    )
    if not same:
        raise RejectedEvent(
            event,
            "return_conflict",
            f"return {seen.return_id} was already recorded with different content",
        )


def _return_record(event: PurchaseReturned) -> ReturnRecord:
    data = event.data
    return ReturnRecord(
        return_id=data.return_id,
        order_id=data.order_id,
        customer_id=event.customer_id,
        merchant_id=data.merchant_id,
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        currency=data.currency,
        refunded_minor=data.refunded_minor,
        items=_returned_lines(event),
    )


def _returned_lines(event: PurchaseReturned) -> tuple[ReturnedLine, ...]:
    """The lines a return names (SKU and units); prices come from the order, never from here."""
    return tuple(ReturnedLine(item.sku, item.quantity) for item in event.data.items)
