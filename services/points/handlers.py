"""Event -> domain -> database: one batch handler per event type, then the registry.

Each handler receives a run of consecutive events of its type (already deduplicated by
event id by the runtime, inside the batch's transaction). It locks the accounts the run
touches, loads what the rules need in a few set-based queries, applies the events in
order in memory, writes the changes back in a few statements and queues the outgoing
events in the outbox. A business key seen before under another event id (an order, a
return, a credit) is a no-op when the content matches, and dead-lettered when it does not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime

from services.points.accounting import (
    PurchaseSetting,
    record_credit,
    record_purchase,
    return_mismatch,
    reverse_for_return,
)
from services.points.book import Changes, ReturnRecord, StoredOrder
from services.points.domain.earning import earning_day
from services.points.domain.errors import PointsRuleError
from services.points.domain.returns import ReturnedLine
from services.points.repository import (
    load_credits,
    load_daily_points,
    load_orders,
    load_returns,
    lock_accounts,
)
from services.points.rules import RuleBook, load_rule_book
from services.points.saga import apply_debit_requests, apply_reversal_requests
from services.points.writes import save_changes
from shared.contracts.envelope import EventEnvelope
from shared.contracts.pos import PurchaseCompleted, PurchaseReturned
from shared.contracts.rewards import (
    PointsCreditRequested,
    PointsDebitRequested,
    PointsDebitReversalRequested,
)
from shared.contracts.topics import Topics
from shared.errors import PoisonEvent
from shared.kafka.handlers import BatchContext, HandlerRegistry

log = logging.getLogger(__name__)
_RULES = "points.rule_book"


class RejectedEvent(PoisonEvent):
    """An event that can never be applied; names itself so only it is dead-lettered."""

    def __init__(self, event: EventEnvelope, code: str, message: str) -> None:
        super().__init__(code, message)
        self.event_id = event.event_id


def as_of(ctx: BatchContext, event: EventEnvelope) -> datetime:
    """The moment that decides pending/available: now, or the event's time if later."""
    return max(event.occurred_at, ctx.now)


async def rule_book(ctx: BatchContext) -> RuleBook:
    """The programme's rule versions, read once per batch."""
    book = ctx.state.get(_RULES)
    if not isinstance(book, RuleBook):
        book = await load_rule_book(ctx.conn)
        ctx.state[_RULES] = book
    return book


async def apply_purchases(
    ctx: BatchContext, events: Sequence[PurchaseCompleted], points_topic: str
) -> None:
    """purchase.completed -> accrual (0 points included), parked returns applied."""
    book = await rule_book(ctx)
    accounts = await lock_accounts(ctx.conn, (e.customer_id for e in events))
    order_ids = [e.data.order_id for e in events]
    # Only the orders named (to tell a replay from a conflict): tiers move at settlement,
    # so a purchase needs none of the customer's other orders.
    orders = await load_orders(ctx.conn, accounts, order_ids)
    parked = _by_order((await load_returns(ctx.conn, parked_for=order_ids)).values())
    daily = await load_daily_points(ctx.conn, _cap_days(book, events)) if book.has_daily_cap else {}
    changes, emitted = Changes(), []
    for event in events:
        known = orders.get(event.data.order_id)
        if known is not None:
            _check_same_order(event, known)
            continue
        account = accounts[event.customer_id]
        rules = book.in_force(event.occurred_at)
        key = (event.customer_id, earning_day(rules.earning, event.occurred_at))
        setting = PurchaseSetting(
            rules=rules,
            earned_today=daily.get(key, 0) + changes.daily_points[key],
            parked_returns=tuple(parked.get(event.data.order_id, ())),
            as_of=as_of(ctx, event),
        )
        with rejecting(event):
            emitted += record_purchase(account, event, setting, changes)
        orders[event.data.order_id] = account.orders[event.data.order_id]
    if not book.has_daily_cap:
        changes.daily_points.clear()  # counted only once some rule version caps earning
    await save_changes(ctx.conn, accounts, changes)
    _emit(ctx, points_topic, emitted)


async def apply_returns(
    ctx: BatchContext, events: Sequence[PurchaseReturned], points_topic: str
) -> None:
    """purchase.returned -> proportional reversal, or parked until the order arrives."""
    accounts = await lock_accounts(ctx.conn, (e.customer_id for e in events))
    orders = await load_orders(ctx.conn, accounts, [e.data.order_id for e in events])
    known = await load_returns(ctx.conn, return_ids=[e.data.return_id for e in events])
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
        emitted += reverse_for_return(account, order, record, as_of(ctx, event), changes)
    await save_changes(ctx.conn, accounts, changes)
    _emit(ctx, points_topic, emitted)


async def apply_credits(
    ctx: BatchContext, events: Sequence[PointsCreditRequested], points_topic: str
) -> None:
    """points.credit_requested -> a lot available at once, applied once per credit id."""
    book = await rule_book(ctx)
    accounts = await lock_accounts(ctx.conn, (e.customer_id for e in events))
    applied = await load_credits(ctx.conn, [e.data.credit_id for e in events])
    changes, emitted = Changes(), []
    for event in events:
        seen = applied.get(event.data.credit_id)
        if seen is not None:
            if seen != (event.customer_id, event.data.points):
                raise RejectedEvent(
                    event,
                    "credit_conflict",
                    f"credit {event.data.credit_id} was already applied with other content",
                )
            continue
        rules = book.in_force(event.occurred_at)
        account = accounts[event.customer_id]
        emitted += record_credit(account, event, rules, as_of(ctx, event), changes)
        applied[event.data.credit_id] = (event.customer_id, event.data.points)
    await save_changes(ctx.conn, accounts, changes)
    _emit(ctx, points_topic, emitted)


@contextmanager
def rejecting(event: EventEnvelope) -> Iterator[None]:
    """A broken business rule (unknown currency...) dead-letters the event with its code."""
    try:
        yield
    except PointsRuleError as error:
        raise RejectedEvent(event, error.code, str(error)) from error


def _check_same_order(event: PurchaseCompleted, known: StoredOrder) -> None:
    same = (
        known.customer_id == event.customer_id
        and known.merchant_id == event.data.merchant_id
        and known.earning.amount_minor == event.data.amount_minor
    )
    if not same:
        raise RejectedEvent(
            event,
            "order_conflict",
            f"order {known.order_id} was already recorded by event {known.event_id} "
            "with a different customer, merchant or amount",
        )
    log.info("order %s already recorded; event %s is a no-op", known.order_id, event.event_id)


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


def _by_order(records: Iterable[ReturnRecord]) -> dict[str, list[ReturnRecord]]:
    grouped: dict[str, list[ReturnRecord]] = {}
    for record in records:
        grouped.setdefault(record.order_id, []).append(record)
    return grouped


def _cap_days(book: RuleBook, events: Sequence[PurchaseCompleted]) -> list[tuple[str, date]]:
    return [
        (e.customer_id, earning_day(book.in_force(e.occurred_at).earning, e.occurred_at))
        for e in events
    ]


def _emit(ctx: BatchContext, topic: str, events: Sequence[EventEnvelope]) -> None:
    for event in events:
        ctx.outbox.emit(topic, event)


def points_registry(points_topic: str = Topics.POINTS) -> HandlerRegistry:
    """The points service's handlers; `points_topic` is where its events go."""
    registry = HandlerRegistry()

    @registry.batch("purchase.completed")
    async def purchases(ctx: BatchContext, events: Sequence[PurchaseCompleted]) -> None:
        await apply_purchases(ctx, events, points_topic)

    @registry.batch("purchase.returned")
    async def returns(ctx: BatchContext, events: Sequence[PurchaseReturned]) -> None:
        await apply_returns(ctx, events, points_topic)

    @registry.batch("points.credit_requested")
    async def credits(ctx: BatchContext, events: Sequence[PointsCreditRequested]) -> None:
        await apply_credits(ctx, events, points_topic)

    @registry.batch("points.debit_requested")
    async def debits(ctx: BatchContext, events: Sequence[PointsDebitRequested]) -> None:
        await apply_debit_requests(ctx, events, points_topic)

    @registry.batch("points.debit_reversal_requested")
    async def reversals(ctx: BatchContext, events: Sequence[PointsDebitReversalRequested]) -> None:
        await apply_reversal_requests(ctx, events, points_topic)

    return registry
