"""What consumed events do to a customer's activity: purchases and returns build the summary
(closing the alerts a purchase answers, scheduling lapse checks and the follow-up, and
telling of a comeback), points events keep the tier current.

Each use case applies a whole run of events in the batch's unit of work; the runtime records
every event id in `processed_events` in that same transaction, so a redelivered event is a
no-op. Outgoing events go through the outbox.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.alerts.activity.events import customer_reactivated
from services.alerts.activity.repository import PastPurchase, TierSighting
from services.alerts.domain.activity import (
    ActivityError,
    apply_purchase,
    apply_return,
    with_history,
)
from services.alerts.domain.bgnbd import BgNbdParams
from services.alerts.domain.lapse import evaluate_lapse
from services.alerts.domain.records import CustomerActivity, OpenAlert
from services.alerts.domain.schedule import follow_up_due_at, next_lapse_check
from services.alerts.domain.thresholds import ThresholdBook
from services.alerts.uow import AlertsUnitOfWork
from shared.contracts.alerts import CustomerReactivated
from shared.contracts.envelope import EventEnvelope
from shared.contracts.fields import minor_units
from shared.contracts.points import AccountSnapshot
from shared.contracts.pos import PurchaseCompleted, PurchaseCompletedData, PurchaseReturned
from shared.errors import RejectedEvent


async def record_snapshot_tiers(uow: AlertsUnitOfWork, events: Sequence[EventEnvelope]) -> None:
    """Keep each customer's tier from the account snapshot every points event carries.

    Per customer only the latest event of the run counts (later in the run wins a tie), and
    the database keeps a stored tier that is newer than it.
    """
    latest: dict[str, TierSighting] = {}
    for event in events:
        snapshot = event.data
        if not isinstance(snapshot, AccountSnapshot):
            continue
        seen = latest.get(event.customer_id)
        if seen is None or event.occurred_at >= seen.seen_at:
            latest[event.customer_id] = TierSighting(
                event.customer_id, snapshot.tier.value, event.occurred_at
            )
    await uow.activities.record_tiers(latest.values())


@dataclass
class _Consequences:
    """What a run of purchases caused beyond the summaries themselves."""

    closures: dict[uuid.UUID, tuple[datetime, uuid.UUID]] = field(default_factory=dict)
    events: list[CustomerReactivated] = field(default_factory=list)


async def record_purchases(
    uow: AlertsUnitOfWork, events: Sequence[PurchaseCompleted], alerts_topic: str
) -> None:
    """Update summaries, close the alerts a purchase answers, schedule checks and follow-ups."""
    customers = [e.customer_id for e in events]
    activities = await uow.activities.lock(customers)
    still_open = await uow.alerts.open_for(customers)
    book = await uow.thresholds.book()
    model = await uow.models.latest_params()
    consequences, late = _Consequences(), set()
    for event in events:
        before = activities.get(event.customer_id) or CustomerActivity(event.customer_id)
        if _inside_known_span(before, event):
            late.add(event.customer_id)
        activities[event.customer_id] = _after_purchase(
            before, event, still_open, book, model, consequences
        )
    await uow.purchases.record([_past(e) for e in events])
    await _make_late_purchases_exact(uow, activities, late)
    for customer in late:
        activity, open_alert = activities[customer], still_open.get(customer)
        rules = book.for_customer(activity.home_merchant_id, activity.main_category).rules
        activities[customer] = replace(
            activity,
            next_check_at=next_lapse_check(
                activity.summary, rules, model, open_alert.status if open_alert else None
            ),
        )
    await uow.activities.save([activities[c] for c in sorted(set(customers))])
    await uow.alerts.close(consequences.closures)
    for outgoing in consequences.events:
        uow.emit(alerts_topic, outgoing)
    await uow.event_clock.advance(max(e.occurred_at for e in events))


def _past(event: PurchaseCompleted) -> PastPurchase:
    data = event.data
    return PastPurchase(
        event.customer_id, event.event_id, event.occurred_at, data.merchant_id, data.amount_minor
    )


async def _make_late_purchases_exact(
    uow: AlertsUnitOfWork, activities: dict[str, CustomerActivity], late: set[str]
) -> None:
    """Recompute visits and gaps from the recorded history (this batch's purchases included)
    for customers a purchase reached between their first and last known ones: the incremental
    summary cannot place it. One query per batch that has such purchases; purchases in order
    cost nothing extra. The caller recomputes their due times from the corrected summary.
    """
    if not late:
        return
    times = await uow.purchases.times(late)
    for customer in late:
        activity = activities[customer]
        activities[customer] = replace(
            activity, summary=with_history(activity.summary, times[customer])
        )


def _inside_known_span(before: CustomerActivity, event: EventEnvelope) -> bool:
    first, last = before.summary.first_purchase_at, before.summary.last_purchase_at
    return first is not None and last is not None and first < event.occurred_at < last


def _after_purchase(
    before: CustomerActivity,
    event: PurchaseCompleted,
    still_open: dict[str, OpenAlert],
    book: ThresholdBook,
    model: BgNbdParams | None,
    consequences: _Consequences,
) -> CustomerActivity:
    after = _counted(before, event)
    previous_last = before.summary.last_purchase_at
    if previous_last is not None and event.occurred_at > previous_last:
        _end_silence(before, event, previous_last, still_open, book, model, consequences)
    open_alert = still_open.get(event.customer_id)  # still open: an older purchase arrived late
    thresholds = book.for_customer(after.home_merchant_id, after.main_category)
    return replace(
        after,
        next_check_at=next_lapse_check(
            after.summary, thresholds.rules, model, open_alert.status if open_alert else None
        ),
        follow_up_due_at=follow_up_due_at(
            after, book.for_customer(after.first_merchant_id, after.main_category)
        ),
    )


def _end_silence(
    before: CustomerActivity,
    event: PurchaseCompleted,
    previous_last: datetime,
    still_open: dict[str, OpenAlert],
    book: ThresholdBook,
    model: BgNbdParams | None,
    consequences: _Consequences,
) -> None:
    """A purchase after the last one answers any open alert; a noticed silence is a comeback.

    "Noticed" means an alert was open, or the rules had the customer at risk when they came
    back even if no scanner had looked yet: both count as reactivated, told apart by
    `alert_was_raised`, so win-back with and without an alert can be compared.
    """
    open_alert = still_open.pop(event.customer_id, None)
    rules = book.for_customer(before.home_merchant_id, before.main_category).rules
    verdict = evaluate_lapse(before.summary, rules, event.occurred_at, model)
    status = open_alert.status if open_alert else (verdict.status if verdict else None)
    if status is not None:
        consequences.events.append(
            customer_reactivated(event, previous_last, open_alert, status.value)
        )
    if open_alert is not None:
        consequences.closures[open_alert.alert_id] = (event.occurred_at, event.event_id)


def _counted(before: CustomerActivity, event: PurchaseCompleted) -> CustomerActivity:
    """The activity with this purchase counted (spend, visits, gaps, merchants, categories)."""
    data = event.data
    _require_same_currency(before, event, data.currency)
    try:
        summary = apply_purchase(
            before.summary, event.occurred_at, data.amount_minor, data.merchant_id
        )
    except ActivityError as exc:
        raise RejectedEvent(event, "unusable_purchase", str(exc)) from exc
    first_so_far = before.summary.first_purchase_at
    is_first = first_so_far is None or event.occurred_at < first_so_far
    return replace(
        before,
        summary=summary,
        currency=data.currency,
        merchant_spend_minor=_plus(
            before.merchant_spend_minor, {data.merchant_id: data.amount_minor}
        ),
        category_spend_minor=_plus(before.category_spend_minor, _category_spend(data)),
        first_merchant_id=data.merchant_id if is_first else before.first_merchant_id,
        first_store_id=data.store_id if is_first else before.first_store_id,
    )


def _category_spend(data: PurchaseCompletedData) -> dict[str, int]:
    spend: dict[str, int] = {}
    for item in data.items:
        value = minor_units(item.unit_price, data.currency) * item.quantity
        spend[item.category] = spend.get(item.category, 0) + value
    return spend


def _plus(totals: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    """Totals plus `more`, never below zero (returns cannot make revenue negative)."""
    merged = dict(totals)
    for key, amount in more.items():
        merged[key] = max(0, merged.get(key, 0) + amount)
    return merged


def _require_same_currency(activity: CustomerActivity, event: EventEnvelope, currency: str) -> None:
    # Spend is one integer per customer: adding yen to euros would corrupt every figure.
    if activity.currency is not None and activity.currency != currency:
        raise RejectedEvent(
            event,
            "currency_mismatch",
            f"customer {activity.customer_id} buys in {activity.currency}, "
            f"this event is in {currency}",
        )


async def record_returns(uow: AlertsUnitOfWork, events: Sequence[PurchaseReturned]) -> None:
    """Returns reduce spend (never below zero); visits and due times stay as they are."""
    activities = await uow.activities.lock([e.customer_id for e in events])
    changed: set[str] = set()
    for event in events:
        activity = activities.get(event.customer_id)
        if activity is None or not activity.summary.has_purchased:
            continue  # nothing bought here that a refund could reduce
        data = event.data
        _require_same_currency(activity, event, data.currency)
        refunded = data.refunded_minor
        activities[event.customer_id] = replace(
            activity,
            summary=apply_return(activity.summary, refunded),
            merchant_spend_minor=_plus(
                activity.merchant_spend_minor, {data.merchant_id: -refunded}
            ),
        )
        changed.add(event.customer_id)
    await uow.activities.save([activities[c] for c in sorted(changed)])
    await uow.event_clock.advance(max(e.occurred_at for e in events))
