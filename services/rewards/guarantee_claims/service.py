"""Guarantee claims from partner apps: filed, screened, judged, or closed by a person.

A claim is screened (`domain.guarantee_claims.screen_claim`) against the orders this
service recorded from `pos.purchases` (`orders`): someone else's order, another
merchant's, one outside the claim window, or a stated amount or currency that differs
from what was paid is rejected with a reason. The amount is never taken from the claim:
omitted, it comes from the record; stated, it must match it. An order not recorded yet
is held (`order_unknown`) until its purchase arrives, and is then never paid without a
person. An accepted claim goes through the very evaluation incidents go through
(`assess_breach`), paying the customer's own report at most up to the policy's
`self_reported_max_tier`. Undecided claims are escalated (`claim.escalated`) 12 hours
after filing and announced overdue (`review.overdue`) after 24 (`green_channel`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from services.rewards.compensation.service import assess_breach
from services.rewards.domain.breach_book import Assessment, BreachReport
from services.rewards.domain.errors import RewardsRuleError
from services.rewards.domain.guarantee import Measurement
from services.rewards.domain.guarantee_claims import (
    GuaranteeClaim,
    ScreeningOutcome,
    screen_claim,
    stated_amount_problem,
)
from services.rewards.orders.repository import held_values
from services.rewards.policies.service import measurement, promise_kind
from shared.errors import Conflict, NotFound, Unprocessable
from shared.money import to_minor_units

if TYPE_CHECKING:
    from services.rewards.uow import RewardsUnitOfWork

MAX_ORDER_MINOR = 10**12  # keeps every refund (up to 100x the order) inside a bigint


class GuaranteeClaimNotFound(NotFound):
    code, title = "guarantee_claim_not_found", "No such guarantee claim"


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


async def file_claim(uow: RewardsUnitOfWork, filing: ClaimFiling) -> Any:
    """Screen and judge a claim in the caller's transaction; returns the stored claim."""
    kind = promise_kind(filing.promise_kind)
    measured, amount_minor = _edge_values(filing)
    await uow.compensations.lock_parties([filing.merchant_id], [filing.customer_id])
    policy = await uow.policies.policy(filing.merchant_id, kind) if kind else None
    values = _claim_row(filing, uuid.uuid4(), measured, amount_minor, uow.now)
    if kind is None or policy is None:
        explanation = f"merchant {filing.merchant_id} makes no {filing.promise_kind} promise"
        return await _store(uow, values, "rejected", "no_such_promise", explanation, None)
    order = (await uow.orders.recorded([filing.order_id])).get(filing.order_id)
    claim_id = values["claim_id"]
    domain_claim = GuaranteeClaim(
        str(claim_id), filing.customer_id, filing.merchant_id, filing.order_id, kind, uow.now
    )
    screening = screen_claim(domain_claim, order, policy)
    if order is not None and screening.outcome is ScreeningOutcome.ACCEPT:
        screening = stated_amount_problem(amount_minor, filing.currency, order) or screening
    reason = screening.reason.value if screening.reason else None
    if screening.outcome is ScreeningOutcome.REJECT:
        return await _store(uow, values, "rejected", reason, screening.explanation, None)
    if order is None:
        held = held_values(
            f"claim:{claim_id}", filing.order_id, filing.customer_id, filing.merchant_id,
            kind.value, measured, "claim", uow.now, claim_id,
        )  # fmt: skip
        await uow.orders.hold(held)
        return await _store(uow, values, "in_review", reason, screening.explanation, None)
    values.update(order_amount_minor=order.amount_minor, currency=order.currency)
    report = BreachReport(
        filing.customer_id, filing.merchant_id, filing.order_id, kind, measured,
        order.net_amount_minor, order.currency, "claim", f"claim:{claim_id}", uow.now,
    )  # fmt: skip
    assessment = await assess_breach(uow, report, policy)
    status, explanation = await outcome(uow, assessment)
    return await _store(uow, values, status, None, explanation, assessment.compensation_id)


def _claim_row(
    filing: ClaimFiling,
    claim_id: uuid.UUID,
    measured: Measurement,
    amount_minor: int | None,
    now: datetime,
) -> dict[str, Any]:
    """The claim's columns as filed (its decision is added when it is stored)."""
    return {
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


async def outcome(uow: RewardsUnitOfWork, assessment: Assessment) -> tuple[str, str]:
    """The claim's status after its assessment, and an explanation the customer can read."""
    if assessment.status == "nothing_owed":
        return "nothing_owed", "the promise was kept, or this breach was already compensated"
    if assessment.status == "granted":
        return "granted", "compensation granted"
    reasons = await uow.compensations.review_reasons(assessment.compensation_id)
    paid = "a first part was paid; " if assessment.granted_id is not None else ""
    why = ", ".join(_HELD_BECAUSE.get(r, r) for r in reasons or [])
    return "in_review", f"{paid}a person decides within 24 hours ({why})"


_HELD_BECAUSE = {
    "self_reported": "a wait beyond what a customer's own report pays needs an incident "
    "measured by the merchant, or a person, to confirm it",
    "order_unknown": "the order was not recorded when the claim was filed",
}


async def _store(
    uow: RewardsUnitOfWork,
    values: dict[str, Any],
    status: str,
    reason: str | None,
    explanation: str,
    compensation_id: uuid.UUID | None,
) -> Any:
    row = {
        **values,
        "status": status,
        "reason": reason,
        "explanation": explanation,
        "compensation_id": compensation_id,
        "decided_at": None if status == "in_review" else uow.now,
    }
    await uow.guarantee_claims.add(row)
    return await stored_claim(uow, values["claim_id"])


async def stored_claim(uow: RewardsUnitOfWork, claim_id: uuid.UUID, *, lock: bool = False) -> Any:
    """The claim's row; `GuaranteeClaimNotFound` when there is none."""
    row = await uow.guarantee_claims.get(claim_id, lock=lock)
    if row is None:
        raise GuaranteeClaimNotFound(f"no guarantee claim {claim_id}")
    return row


class ClaimNotWaiting(Conflict):
    code, title = "claim_not_waiting", "The claim is not waiting for its order"


async def reject_waiting_claim(
    uow: RewardsUnitOfWork, claim_id: uuid.UUID, actor: str, note: str | None
) -> Any:
    """A person closes a claim still waiting for an order that was never recorded.

    Only a claim `in_review` without a compensation can be closed here (one with a
    compensation is decided through that compensation's review); its held report is
    removed in the same transaction, so a purchase arriving later releases nothing.
    """
    row = await stored_claim(uow, claim_id, lock=True)
    if row.status != "in_review" or row.compensation_id is not None:
        raise ClaimNotWaiting(
            f"claim {claim_id} is {row.status}"
            + (" and is decided through its compensation" if row.compensation_id else "")
        )
    await uow.guarantee_claims.drop_held_report(claim_id)
    explanation = f"rejected by admin:{actor}" + (f": {note}" if note else "")
    await uow.guarantee_claims.update(
        claim_id, status="rejected", decided_at=uow.now, explanation=explanation
    )
    return await stored_claim(uow, claim_id)
