"""Guarantee compensation: one evaluation for incidents and claims, exactly once per breach.

`assess_breach` is the single path from a measured promise to compensation:
1. the merchant's policy for the promise (none: nothing owed);
2. the breach row for (order, promise), locked; new -> everything the measurement earns,
   known -> only the top-up a worse measurement adds (`domain.guarantee.top_up`);
3. the caps (customer 30 days, merchant month): within them the compensation is granted
   and delivered at once, over them it waits in manual review (never dropped);
4. one `compensations` row per (breach, tier), so the same tier is never paid twice.

Lock order, the same for consumers, HTTP requests and admins so they never deadlock:
merchant (advisory), customer (advisory), then the breach row. The two advisory locks
make the cap check and the grant one step: two claims of one customer cannot both
slip under the cap.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import breaches, compensations
from services.rewards.domain.guarantee import (
    CompensationSet,
    GrantedCompensation,
    GuaranteePolicy,
    Measurement,
    MeasureUnit,
    PromiseKind,
    breach_key,
    evaluate,
    top_up,
)
from services.rewards.domain.guarantee_limits import (
    CustomerUsage,
    Route,
    budget_month,
    customer_window_start,
    route_compensation,
)
from services.rewards.events import rewards_event
from services.rewards.issuing import VoucherRequest, issue_voucher
from services.rewards.policies import load_limits
from services.rewards.topics import RewardsTopics
from shared.money import format_money
from shared.outbox import OutboxWriter

_COMPENSATION_NAMESPACE = uuid.UUID("b4a7f0c6-1d1e-4a8e-8f7e-6c1c2b3a9d10")
ORDER_NOT_KNOWN = "order_not_known"


@dataclass(frozen=True)
class BreachReport:
    """A measured promise on an order, from an incident event or a customer's claim."""

    customer_id: str
    merchant_id: str
    order_id: str
    promise: PromiseKind
    measured: Measurement
    order_amount_minor: int
    currency: str
    trigger: str  # "incident" or "claim"
    trigger_ref: str
    at: datetime


@dataclass(frozen=True)
class Assessment:
    """What one report led to: the compensation row (if any) and its status."""

    compensation_id: uuid.UUID | None
    status: str  # "granted", "in_review" or "nothing_owed"
    compensation: CompensationSet


@dataclass
class Delivery:
    """Where delivery writes: the transaction's outbox and the service's topics."""

    outbox: OutboxWriter
    topics: RewardsTopics
    default_voucher_days: int = 30


def compensation_id_for(key: str, tier: int) -> uuid.UUID:
    return uuid.uuid5(_COMPENSATION_NAMESPACE, f"{key}#{tier}")


_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


async def lock_parties(
    conn: AsyncConnection, merchant_ids: Iterable[str], customer_ids: Iterable[str]
) -> None:
    """Take the merchant, then the customer advisory locks, each set in sorted order."""
    for merchant_id in sorted(set(merchant_ids)):
        await conn.execute(_LOCK, {"key": f"rewards:merchant:{merchant_id}"})
    for customer_id in sorted(set(customer_ids)):
        await conn.execute(_LOCK, {"key": f"rewards:customer:{customer_id}"})


async def _locked_breach(conn: AsyncConnection, key: str) -> Any:
    query = sa.select(breaches).where(breaches.c.breach_key == key).with_for_update()
    return (await conn.execute(query)).first()


def _granted(row: Any) -> GrantedCompensation:
    unit = MeasureUnit(row.worst_unit)
    owed = CompensationSet(row.tier, frozenset(row.vouchers), row.points, row.refund_minor)
    return GrantedCompensation(Measurement(row.worst_value, unit), owed)


async def _record_breach(
    conn: AsyncConnection, report: BreachReport, key: str, row: Any, owed: CompensationSet
) -> None:
    """Store the worst measurement and everything owed so far (granted or in review)."""
    if row is None:
        await conn.execute(
            sa.insert(breaches).values(
                breach_key=key,
                customer_id=report.customer_id,
                merchant_id=report.merchant_id,
                order_id=report.order_id,
                promise_kind=report.promise.value,
                currency=report.currency,
                order_amount_minor=report.order_amount_minor,
                worst_value=report.measured.value,
                worst_unit=report.measured.unit.value,
                tier=owed.tier,
                vouchers=sorted(owed.vouchers),
                points=owed.points,
                refund_minor=owed.refund_minor,
                first_seen_at=report.at,
                updated_at=report.at,
            )
        )
        return
    total = _granted(row).compensation.plus(owed)
    await conn.execute(
        sa.update(breaches)
        .where(breaches.c.breach_key == key)
        .values(
            worst_value=report.measured.value,
            worst_unit=report.measured.unit.value,
            tier=total.tier,
            vouchers=sorted(total.vouchers),
            points=total.points,
            refund_minor=total.refund_minor,
            updated_at=report.at,
        )
    )


def _owed(policy: GuaranteePolicy, report: BreachReport, row: Any) -> CompensationSet:
    if row is None:
        return evaluate(policy, report.measured, report.order_amount_minor)
    return top_up(policy, _granted(row), report.measured, row.order_amount_minor)


async def customer_usage(conn: AsyncConnection, customer_id: str, now: datetime) -> CustomerUsage:
    """Money and distinct breaches granted to a customer in the 30 days up to `now`."""
    granted = compensations.c
    row = (
        await conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(granted.refund_minor), 0),
                sa.func.count(sa.distinct(granted.breach_key)),
            ).where(
                granted.customer_id == customer_id,
                granted.status == "granted",
                granted.decided_at > customer_window_start(now),
                granted.decided_at <= now,
            )
        )
    ).one()
    return CustomerUsage(int(row[0]), int(row[1]))


async def merchant_month_spend(conn: AsyncConnection, merchant_id: str, now: datetime) -> int:
    start, end = budget_month(now)
    spent = await conn.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(compensations.c.refund_minor), 0)).where(
            compensations.c.merchant_id == merchant_id,
            compensations.c.status == "granted",
            compensations.c.decided_at >= start,
            compensations.c.decided_at < end,
        )
    )
    return int(spent or 0)


async def assess_breach(
    conn: AsyncConnection,
    delivery: Delivery,
    report: BreachReport,
    policy: GuaranteePolicy,
    *,
    force_review: str | None = None,
) -> Assessment:
    """Evaluate `report` against `policy` once per breach; grant, or hold for review.

    The caller holds the merchant and customer locks (`lock_parties`). `force_review`
    names a reason to hold the compensation for a person even within the caps.
    """
    key = breach_key(report.order_id, report.promise)
    row = await _locked_breach(conn, key)
    owed = _owed(policy, report, row)
    if owed.is_empty:
        return Assessment(None, "nothing_owed", owed)
    limits = await load_limits(conn, report.merchant_id)
    usage, spent = CustomerUsage(), 0
    # Usage is only read for the caps that exist: without caps a grant costs no sums.
    if limits.customer_refund_cap_minor is not None or limits.customer_breach_cap is not None:
        usage = await customer_usage(conn, report.customer_id, report.at)
    if limits.merchant_monthly_budget_minor is not None:
        spent = await merchant_month_spend(conn, report.merchant_id, report.at)
    decision = route_compensation(owed, limits, usage, spent, new_breach=row is None)
    reasons = [cap.value for cap in decision.caps_exceeded]
    if force_review:
        reasons.append(force_review)
    status = "in_review" if decision.route is Route.MANUAL_REVIEW or force_review else "granted"
    await _record_breach(conn, report, key, row, owed)
    compensation_id = compensation_id_for(key, owed.tier)
    values = {
        "compensation_id": compensation_id,
        "breach_key": key,
        "tier": owed.tier,
        "customer_id": report.customer_id,
        "merchant_id": report.merchant_id,
        "order_id": report.order_id,
        "promise_kind": report.promise.value,
        "vouchers": sorted(owed.vouchers),
        "points": owed.points,
        "refund_minor": owed.refund_minor,
        "currency": report.currency,
        "new_breach": row is None,
        "status": status,
        "trigger": report.trigger,
        "trigger_ref": report.trigger_ref,
        "review_reasons": reasons,
        "created_at": report.at,
        "decided_at": report.at if status == "granted" else None,
        "decided_by": "policy" if status == "granted" else None,
    }
    await conn.execute(sa.insert(compensations).values(**values))
    if status == "granted":
        await deliver(conn, delivery, values, report.at)
    else:
        _announce_review(delivery, values, report.at)
    return Assessment(compensation_id, status, owed)


def _facts(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "compensation_id": str(values["compensation_id"]),
        "merchant_id": values["merchant_id"],
        "order_id": values["order_id"],
        "promise_kind": values["promise_kind"],
        "tier": values["tier"],
        "vouchers": list(values["vouchers"]),
        "points": values["points"],
        "refund_amount": format_money(values["refund_minor"], values["currency"]),
        "currency": values["currency"],
        "top_up": not values["new_breach"],
    }


def _announce_review(delivery: Delivery, values: dict[str, Any], now: datetime) -> None:
    data = {**_facts(values), "reasons": values["review_reasons"]}
    event = rewards_event(
        "compensation.review_required", values["customer_id"], values["compensation_id"], now, data
    )
    delivery.outbox.emit(delivery.topics.rewards, event)


async def deliver(
    conn: AsyncConnection, delivery: Delivery, values: dict[str, Any], now: datetime
) -> None:
    """Pay a granted compensation: vouchers here, points and money through events."""
    compensation_id, customer_id = values["compensation_id"], values["customer_id"]
    topic = delivery.topics.rewards
    for reward_code in values["vouchers"]:
        request = VoucherRequest(
            customer_id,
            reward_code,
            "guarantee",
            f"compensation:{compensation_id}:{reward_code}",
            merchant_id=values["merchant_id"],
        )
        await issue_voucher(
            conn, delivery.outbox, topic, request, now, delivery.default_voucher_days
        )
    if values["points"]:
        credit = {
            "credit_id": f"compensation:{compensation_id}",
            "points": values["points"],
            "reason": f"compensation: {values['promise_kind']}",
            "merchant_id": values["merchant_id"],
        }
        event = rewards_event("points.credit_requested", customer_id, compensation_id, now, credit)
        delivery.outbox.emit(topic, event)
    if values["refund_minor"]:
        refund = {
            "compensation_id": str(compensation_id),
            "merchant_id": values["merchant_id"],
            "order_id": values["order_id"],
            "amount": format_money(values["refund_minor"], values["currency"]),
            "currency": values["currency"],
        }
        event = rewards_event("refund.instructed", customer_id, compensation_id, now, refund)
        delivery.outbox.emit(topic, event)
    granted = {**_facts(values), "decided_by": values["decided_by"]}
    event = rewards_event("compensation.granted", customer_id, compensation_id, now, granted)
    delivery.outbox.emit(topic, event)
