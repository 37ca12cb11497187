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

Incidents arrive in batches and take the same path for the whole batch at once
(`breach_book.BreachBook`): every lock in one statement, every breach in one read,
judged in order in memory, written with one statement per table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.breach_book import (
    Assessment,
    BreachBook,
    BreachReport,
    compensation_id_for,
)
from services.rewards.db import compensations
from services.rewards.domain.guarantee import GuaranteePolicy
from services.rewards.domain.guarantee_limits import (
    budget_month,
)
from services.rewards.events import rewards_event
from services.rewards.issuing import VoucherRequest, issue_vouchers
from services.rewards.policies import load_limits
from services.rewards.topics import RewardsTopics
from shared.money import format_money
from shared.outbox import OutboxWriter

__all__ = [
    "Assessment",
    "BreachReport",
    "Delivery",
    "assess_breach",
    "compensation_id_for",
    "deliver",
    "deliver_assessed",
    "lock_parties",
]
ORDER_NOT_KNOWN = "order_not_known"


@dataclass
class Delivery:
    """Where delivery writes: the transaction's outbox and the service's topics."""

    outbox: OutboxWriter
    topics: RewardsTopics
    default_voucher_days: int = 30


# One statement for every lock: the keys arrive in the order they must be taken (unnest
# keeps array order), so a batch of a thousand customers costs one round trip.
_LOCK_ALL = sa.text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(CAST(:keys AS text[])) AS k"
)


def party_lock_keys(merchant_ids: Iterable[str], customer_ids: Iterable[str]) -> list[str]:
    """The advisory lock keys in the one order every path takes them: merchants, customers."""
    merchants = [f"rewards:merchant:{m}" for m in sorted(set(merchant_ids))]
    return merchants + [f"rewards:customer:{c}" for c in sorted(set(customer_ids))]


async def lock_parties(
    conn: AsyncConnection, merchant_ids: Iterable[str], customer_ids: Iterable[str]
) -> None:
    """Take the merchant, then the customer advisory locks, each set in sorted order."""
    keys = party_lock_keys(merchant_ids, customer_ids)
    if keys:
        await conn.execute(_LOCK_ALL, {"keys": keys})


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


async def merchant_month_money(conn: AsyncConnection, merchant_id: str, now: datetime) -> int:
    """Money the merchant granted this budget month as its cap counts it: refunds plus the
    value of vouchers."""
    start, end = budget_month(now)
    spent = await conn.scalar(
        sa.select(
            sa.func.coalesce(
                sa.func.sum(compensations.c.refund_minor + compensations.c.voucher_value_minor), 0
            )
        ).where(
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
    names a reason to hold the compensation for a person even within the caps. This is
    a batch of one through `BreachBook`, the path incidents take in batches.
    """
    limits = {report.merchant_id: await load_limits(conn, report.merchant_id)}
    book = await BreachBook.load(conn, [report], limits)
    assessment = book.assess(report, policy, force_review)
    await deliver_assessed(conn, delivery, await book.write(conn))
    return assessment


async def deliver_assessed(
    conn: AsyncConnection, delivery: Delivery, assessed: Sequence[dict[str, Any]]
) -> None:
    """Pay the granted compensations and announce the held ones, in the order given."""
    granted = [values for values in assessed if values["status"] == "granted"]
    issued = await _issue_vouchers(conn, delivery, granted)
    for values in assessed:
        if values["status"] == "granted":
            _emit_payment(delivery, values, issued)
        else:
            _announce_review(delivery, values)


async def deliver(
    conn: AsyncConnection, delivery: Delivery, values: dict[str, Any], now: datetime
) -> None:
    """Pay one granted compensation (an admin's approval) at `now`."""
    issued = await _issue_vouchers(conn, delivery, [values], now)
    _emit_payment(delivery, values, issued, now)


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


def _announce_review(delivery: Delivery, values: dict[str, Any]) -> None:
    data = {**_facts(values), "reasons": values["review_reasons"]}
    event = rewards_event(
        "compensation.review_required",
        values["customer_id"],
        values["compensation_id"],
        values["created_at"],
        data,
    )
    delivery.outbox.emit(delivery.topics.rewards, event)


def _voucher_requests(values: dict[str, Any], at: datetime | None = None) -> list[VoucherRequest]:
    return [
        VoucherRequest(
            values["customer_id"],
            reward_code,
            "guarantee",
            f"compensation:{values['compensation_id']}:{reward_code}",
            merchant_id=values["merchant_id"],
            issued_at=at or values["decided_at"],
        )
        for reward_code in values["vouchers"]
    ]


async def _issue_vouchers(
    conn: AsyncConnection,
    delivery: Delivery,
    granted: Sequence[dict[str, Any]],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Every voucher the compensations owe, with one insert; events by origin reference.

    Vouchers are issued at the compensation's decision time unless `now` says otherwise.
    """
    requests = [r for values in granted for r in _voucher_requests(values, now)]
    if not requests:
        return {}
    fallback = now or granted[0]["decided_at"]  # every request carries its own time
    issued = await issue_vouchers(conn, requests, fallback, delivery.default_voucher_days)
    return {r.origin_ref: i.event for r, i in zip(requests, issued, strict=True)}


def _emit_payment(
    delivery: Delivery, values: dict[str, Any], issued: dict[str, Any], now: datetime | None = None
) -> None:
    """Vouchers' `reward.issued`, then points and money as events, then the grant itself."""
    compensation_id, customer_id = values["compensation_id"], values["customer_id"]
    at = now or values["decided_at"]
    topic = delivery.topics.rewards
    for request in _voucher_requests(values, now):
        event = issued.get(request.origin_ref)
        if event is not None:
            delivery.outbox.emit(topic, event)
    if values["points"]:
        credit = {
            "credit_id": f"compensation:{compensation_id}",
            "points": values["points"],
            "reason": f"compensation: {values['promise_kind']}",
            "merchant_id": values["merchant_id"],
        }
        event = rewards_event("points.credit_requested", customer_id, compensation_id, at, credit)
        delivery.outbox.emit(topic, event)
    if values["refund_minor"]:
        refund = {
            "compensation_id": str(compensation_id),
            "merchant_id": values["merchant_id"],
            "order_id": values["order_id"],
            "amount": format_money(values["refund_minor"], values["currency"]),
            "currency": values["currency"],
        }
        event = rewards_event("refund.instructed", customer_id, compensation_id, at, refund)
        delivery.outbox.emit(topic, event)
    granted = {**_facts(values), "decided_by": values["decided_by"]}
    event = rewards_event("compensation.granted", customer_id, compensation_id, at, granted)
    delivery.outbox.emit(topic, event)
