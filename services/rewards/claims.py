"""Guarantee claims from partner apps, manual review, and the green channel.

A claim is screened (`domain.guarantee_claims.screen_claim`) against the orders this
service recorded from `pos.purchases` (`orders.py`): someone else's order, another
merchant's, one outside the claim window, or a stated amount or currency that differs
from what was paid is rejected with a reason. The amount is never taken from the claim:
omitted, it comes from the record; stated, it must match it. An order not recorded yet
is held (`order_unknown`) until its purchase arrives, and is then never paid without a
person. An accepted claim goes through the very evaluation incidents go through
(`assess_breach`), paying the customer's own report at most up to the policy's
`self_reported_max_tier`. Undecided claims are escalated (`claim.escalated`) 12 hours
after filing and announced overdue (`review.overdue`) after 24 (`green_channel.py`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.breach_ledger import lower_refund, refund_on_record
from services.rewards.compensation import (
    Assessment,
    BreachReport,
    Delivery,
    assess_breach,
    deliver,
    lock_parties,
)
from services.rewards.db import compensations, guarantee_claims, held_reports
from services.rewards.domain.errors import RewardsRuleError
from services.rewards.domain.guarantee import Measurement
from services.rewards.domain.guarantee_claims import (
    ESCALATE_AFTER,
    GuaranteeClaim,
    ScreeningOutcome,
    decide_by,
    screen_claim,
    stated_amount_problem,
)
from services.rewards.events import rewards_event
from services.rewards.orders import held_values, hold_report, recorded_orders
from services.rewards.policies import load_policy, measurement, promise_kind
from shared.auth import ApiPrincipal
from shared.db import api_keys
from shared.errors import Conflict, NotFound, Unprocessable
from shared.money import to_minor_units
from shared.outbox import OutboxWriter

MAX_ORDER_MINOR = 10**12  # keeps every refund (up to 100x the order) inside a bigint


class GuaranteeClaimNotFound(NotFound):
    code, title = "guarantee_claim_not_found", "No such guarantee claim"


class CompensationNotFound(NotFound):
    code, title = "compensation_not_found", "No such compensation"


class AlreadyDecided(Conflict):
    code, title = "already_decided", "The compensation was already decided"


@dataclass(frozen=True)
class ClaimFiling:
    """What a partner app sends when a customer complains."""

    customer_id: str
    merchant_id: str
    order_id: str
    promise_kind: str
    measured_value: Decimal
    measured_unit: str
    order_amount: Decimal | None = None  # None: taken from the recorded order
    currency: str | None = None


async def file_claim(
    conn: AsyncConnection, delivery: Delivery, filing: ClaimFiling, now: datetime
) -> dict[str, Any]:
    """Screen and judge a claim in the caller's transaction; returns the stored claim."""
    kind = promise_kind(filing.promise_kind)
    measured, amount_minor = _edge_values(filing)
    await lock_parties(conn, [filing.merchant_id], [filing.customer_id])
    policy = await load_policy(conn, filing.merchant_id, kind) if kind else None
    claim_id = uuid.uuid4()
    values: dict[str, Any] = {
        "claim_id": claim_id,
        "customer_id": filing.customer_id,
        "merchant_id": filing.merchant_id,
        "order_id": filing.order_id,
        "promise_kind": filing.promise_kind,
        "measured_value": measured.value,
        "measured_unit": measured.unit.value,
        "order_amount_minor": amount_minor,
        "currency": filing.currency,
        "filed_at": now,
    }
    if kind is None or policy is None:
        explanation = f"merchant {filing.merchant_id} makes no {filing.promise_kind} promise"
        return await _store(conn, values, "rejected", "no_such_promise", explanation, None, now)
    order = (await recorded_orders(conn, [filing.order_id])).get(filing.order_id)
    domain_claim = GuaranteeClaim(
        str(claim_id), filing.customer_id, filing.merchant_id, filing.order_id, kind, now
    )
    screening = screen_claim(domain_claim, order, policy)
    if order is not None and screening.outcome is ScreeningOutcome.ACCEPT:
        screening = stated_amount_problem(amount_minor, filing.currency, order) or screening
    reason = screening.reason.value if screening.reason else None
    if screening.outcome is ScreeningOutcome.REJECT:
        return await _store(conn, values, "rejected", reason, screening.explanation, None, now)
    if order is None:
        held = held_values(
            f"claim:{claim_id}", filing.order_id, filing.customer_id, filing.merchant_id,
            kind.value, measured, "claim", now, claim_id,
        )  # fmt: skip
        await hold_report(conn, held)
        return await _store(conn, values, "in_review", reason, screening.explanation, None, now)
    values.update(order_amount_minor=order.amount_minor, currency=order.currency)
    report = BreachReport(
        filing.customer_id,
        filing.merchant_id,
        filing.order_id,
        kind,
        measured,
        order.net_amount_minor,
        order.currency,
        "claim",
        f"claim:{claim_id}",
        now,
    )
    assessment = await assess_breach(conn, delivery, report, policy)
    status, explanation = await outcome(conn, assessment)
    return await _store(conn, values, status, None, explanation, assessment.compensation_id, now)


def _edge_values(filing: ClaimFiling) -> tuple[Measurement, int | None]:
    try:
        measured = measurement(filing.measured_value, filing.measured_unit)
        amount_minor = None
        if filing.order_amount is not None:
            if filing.currency is None:
                raise ValueError("an order amount needs its currency")
            amount_minor = to_minor_units(filing.order_amount, filing.currency)
    except (RewardsRuleError, ValueError) as error:
        raise Unprocessable(str(error), code="claim_invalid") from error
    if amount_minor is not None and amount_minor > MAX_ORDER_MINOR:
        raise Unprocessable("the order amount is implausibly large", code="order_amount_too_large")
    return measured, amount_minor


async def outcome(conn: AsyncConnection, assessment: Assessment) -> tuple[str, str]:
    """The claim's status after its assessment, and an explanation the customer can read."""
    if assessment.status == "nothing_owed":
        return "nothing_owed", "the promise was kept, or this breach was already compensated"
    if assessment.status == "granted":
        return "granted", "compensation granted"
    reasons = await conn.scalar(
        sa.select(compensations.c.review_reasons).where(
            compensations.c.compensation_id == assessment.compensation_id
        )
    )
    paid = "a first part was paid; " if assessment.granted_id is not None else ""
    why = ", ".join(_HELD_BECAUSE.get(r, r) for r in reasons or [])
    return "in_review", f"{paid}a person decides within 24 hours ({why})"


_HELD_BECAUSE = {
    "self_reported": "a wait beyond what a customer's own report pays needs an incident "
    "measured by the merchant, or a person, to confirm it",
    "order_unknown": "the order was not recorded when the claim was filed",
}


async def _store(
    conn: AsyncConnection,
    values: dict[str, Any],
    status: str,
    reason: str | None,
    explanation: str,
    compensation_id: uuid.UUID | None,
    now: datetime,
) -> dict[str, Any]:
    row = {
        **values,
        "status": status,
        "reason": reason,
        "explanation": explanation,
        "compensation_id": compensation_id,
        "decided_at": None if status == "in_review" else now,
    }
    await conn.execute(sa.insert(guarantee_claims).values(**row))
    return await claim_view(conn, values["claim_id"])


async def claim_view(conn: AsyncConnection, claim_id: uuid.UUID) -> dict[str, Any]:
    row = (
        await conn.execute(
            sa.select(guarantee_claims).where(guarantee_claims.c.claim_id == claim_id)
        )
    ).first()
    if row is None:
        raise GuaranteeClaimNotFound(f"no guarantee claim {claim_id}")
    view = dict(row._mapping)
    view["claim_id"] = str(row.claim_id)
    view["compensation_id"] = str(row.compensation_id) if row.compensation_id else None
    view["decide_by"] = decide_by(row.filed_at)
    return view


async def decide_compensation(
    conn: AsyncConnection,
    delivery: Delivery,
    compensation_id: uuid.UUID,
    approve: bool,
    actor: str,
    now: datetime,
    note: str | None = None,
) -> dict[str, Any]:
    """An admin approves (pays now) or rejects a compensation held for review.

    `actor` is who the caller authenticated as (the API key's name); `note` is the
    reviewer's own text, kept beside it and never taken as the decider.
    """
    found = (
        await conn.execute(
            sa.select(compensations.c.merchant_id, compensations.c.customer_id).where(
                compensations.c.compensation_id == compensation_id
            )
        )
    ).first()
    if found is None:
        raise CompensationNotFound(f"no compensation {compensation_id}")
    await lock_parties(conn, [found.merchant_id], [found.customer_id])
    row = (
        await conn.execute(
            sa.select(compensations)
            .where(compensations.c.compensation_id == compensation_id)
            .with_for_update()
        )
    ).one()
    if row.status != "in_review":
        raise AlreadyDecided(f"compensation {compensation_id} is already {row.status}")
    status = "granted" if approve else "rejected"
    decided = {"status": status, "decided_at": now, "decided_by": f"admin:{actor}"}
    values = {**row._mapping, **decided, "decision_note": note}
    if approve:  # a return since the part was judged lowers it
        values["refund_minor"] = await refund_on_record(conn, row)
        await lower_refund(conn, row, values["refund_minor"])
    await conn.execute(
        sa.update(compensations)
        .where(compensations.c.compensation_id == compensation_id)
        .values(**decided, decision_note=note)
    )
    await conn.execute(
        sa.update(guarantee_claims)
        .where(
            guarantee_claims.c.compensation_id == compensation_id,
            guarantee_claims.c.status == "in_review",
        )
        .values(status=status, decided_at=now, explanation=f"{status} by {actor}")
    )
    if approve:
        await deliver(conn, delivery, values, now)
    return compensation_view(values)


async def key_name(conn: AsyncConnection, principal: ApiPrincipal) -> str:
    """The name of the API key the caller authenticated with (its id if it has none)."""
    name = await conn.scalar(
        sa.select(api_keys.c.name).where(api_keys.c.key_id == principal.key_id)
    )
    return f"{name[:150]} ({principal.key_id})" if name else principal.key_id


class ClaimNotWaiting(Conflict):
    code, title = "claim_not_waiting", "The claim is not waiting for its order"


async def reject_waiting_claim(
    conn: AsyncConnection, claim_id: uuid.UUID, actor: str, note: str | None, now: datetime
) -> dict[str, Any]:
    """A person closes a claim still waiting for an order that was never recorded.

    Only a claim `in_review` without a compensation can be closed here (one with a
    compensation is decided through that compensation's review); its held report is
    removed in the same transaction, so a purchase arriving later releases nothing.
    """
    row = (
        await conn.execute(
            sa.select(guarantee_claims)
            .where(guarantee_claims.c.claim_id == claim_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise GuaranteeClaimNotFound(f"no guarantee claim {claim_id}")
    if row.status != "in_review" or row.compensation_id is not None:
        raise ClaimNotWaiting(
            f"claim {claim_id} is {row.status}"
            + (" and is decided through its compensation" if row.compensation_id else "")
        )
    await conn.execute(sa.delete(held_reports).where(held_reports.c.claim_id == claim_id))
    explanation = f"rejected by admin:{actor}" + (f": {note}" if note else "")
    await conn.execute(
        sa.update(guarantee_claims)
        .where(guarantee_claims.c.claim_id == claim_id)
        .values(status="rejected", decided_at=now, explanation=explanation)
    )
    return await claim_view(conn, claim_id)


def compensation_view(row: Any) -> dict[str, Any]:
    view = dict(row)
    view["compensation_id"] = str(view["compensation_id"])
    view["vouchers"] = list(view["vouchers"])
    view["review_reasons"] = list(view["review_reasons"])
    return view


async def review_queue(conn: AsyncConnection, limit: int = 200) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.select(compensations)
        .where(compensations.c.status == "in_review")
        .order_by(compensations.c.created_at)
        .limit(limit)
    )
    return [compensation_view(r._mapping) for r in rows]


async def escalate_due_claims(
    conn: AsyncConnection, outbox: OutboxWriter, ops_topic: str, now: datetime, limit: int
) -> int:
    """Emit `claim.escalated` once for each claim undecided 12 hours after filing."""
    due = (
        await conn.execute(
            sa.select(guarantee_claims)
            .where(
                guarantee_claims.c.status == "in_review",
                guarantee_claims.c.escalated_at.is_(None),
                guarantee_claims.c.filed_at <= now - ESCALATE_AFTER,
            )
            .order_by(guarantee_claims.c.filed_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for row in due:
        await conn.execute(
            sa.update(guarantee_claims)
            .where(guarantee_claims.c.claim_id == row.claim_id)
            .values(escalated_at=now)
        )
        data = {
            "claim_id": str(row.claim_id),
            "merchant_id": row.merchant_id,
            "order_id": row.order_id,
            "promise_kind": row.promise_kind,
            "filed_at": row.filed_at,
            "decide_by": decide_by(row.filed_at),
        }
        outbox.emit(
            ops_topic, rewards_event("claim.escalated", row.customer_id, row.claim_id, now, data)
        )
    return len(due)


async def overdue_claims(
    conn: AsyncConnection, now: datetime, limit: int = 500
) -> list[dict[str, Any]]:
    """Claims still undecided past their 24-hour deadline, most overdue first."""
    rows = await conn.execute(
        sa.select(guarantee_claims.c.claim_id)
        .where(
            guarantee_claims.c.status == "in_review",
            guarantee_claims.c.filed_at <= now - timedelta(hours=24),
        )
        .order_by(guarantee_claims.c.filed_at)
        .limit(limit)
    )
    return [await claim_view(conn, r.claim_id) for r in rows]
