"""purchase.completed / purchase.returned -> the order record, and the reports it releases.

A purchase is recorded once; an incident or a claim that arrived before it (held with
`order_unknown`) is judged in the same transaction, on the recorded amount:
- an incident pays as any incident does, unless it names another customer or merchant
  than the purchase (then it is dropped with a warning: it was consumed long ago, so it
  can no longer be dead-lettered);
- a claim is screened against the record (customer, merchant, claim window, a stated
  amount or currency) and, if accepted, held for a person (`order_unknown`): a claim
  filed for an order nobody had seen is never paid automatically.
The held row is deleted in that transaction, so a report is released exactly once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from services.rewards.domain.breach_book import BreachReport
from services.rewards.domain.guarantee import GuaranteePolicy, PromiseKind
from services.rewards.domain.guarantee_claims import (
    ClaimScreening,
    GuaranteeClaim,
    KnownOrder,
    ScreeningOutcome,
    order_problem,
    screen_claim,
    stated_amount_problem,
)
from services.rewards.guarantee_claims.service import outcome
from services.rewards.incidents.service import Judgement, batch_policies, judge
from services.rewards.orders.repository import ORDER_UNKNOWN, held_measurement
from shared.contracts.pos import PurchaseCompleted, PurchaseReturned

if TYPE_CHECKING:
    from services.rewards.uow import RewardsUnitOfWork

log = logging.getLogger(__name__)


async def apply_returns(uow: RewardsUnitOfWork, events: Sequence[PurchaseReturned]) -> None:
    """Reduce each order by what its returns refunded (each return once)."""
    await uow.orders.record_returns(events)


async def apply_purchases(uow: RewardsUnitOfWork, events: Sequence[PurchaseCompleted]) -> None:
    """Record the purchases, then judge every report that waited for them, in order.

    The party locks are taken first, as a claim or an incident takes them before it reads
    the order record: whichever commits first, the other sees it, so a report is never
    held after its purchase went by.
    """
    merchants = (e.data.merchant_id for e in events)
    await uow.compensations.lock_parties(merchants, (e.customer_id for e in events))
    new = await uow.orders.record_purchases(events)
    held = await uow.orders.take_held(new)
    if not held:
        return
    known = await uow.orders.recorded(new)
    wanted = {(row["merchant_id"], PromiseKind(row["promise_kind"])) for row in held}
    policies = await batch_policies(uow, wanted)
    judged: list[Judgement] = []
    claims: list[tuple[int, uuid.UUID]] = []
    for row in held:
        order = known[row["order_id"]]
        policy = policies[(row["merchant_id"], PromiseKind(row["promise_kind"]))]
        if row["trigger"] == "claim":
            item = await _released_claim(uow, row, order, policy)
            if item is not None:
                claims.append((len(judged), row["claim_id"]))
                judged.append(item)
        elif policy is not None and _same_parties(row, order) and not order.returned_in_full:
            judged.append(Judgement(_report(row, order), policy))
    assessments = await judge(uow, judged)
    for index, claim_id in claims:
        status, explanation = await outcome(uow, assessments[index])
        compensation_id = assessments[index].compensation_id
        await _settle(uow, claim_id, status, None, explanation, compensation_id)


def _report(row: dict[str, Any], order: KnownOrder) -> BreachReport:
    return BreachReport(
        row["customer_id"],
        row["merchant_id"],
        row["order_id"],
        PromiseKind(row["promise_kind"]),
        held_measurement(row),
        order.net_amount_minor,
        order.currency,
        row["trigger"],
        row["trigger_ref"],
        row["at"],
    )


def _same_parties(row: dict[str, Any], order: KnownOrder) -> bool:
    problem = order_problem(row["customer_id"], row["merchant_id"], row["order_id"], order)
    if problem is not None:
        log.warning("held %s dropped: %s", row["trigger_ref"], problem.explanation)
    return problem is None


async def _released_claim(
    uow: RewardsUnitOfWork, row: dict[str, Any], order: KnownOrder, policy: GuaranteePolicy | None
) -> Judgement | None:
    """The claim's judgement once its order is known, or None after settling a refusal."""
    claim = await uow.guarantee_claims.get(row["claim_id"])
    screening = _screen(claim, order, policy)
    if screening.outcome is ScreeningOutcome.REJECT or policy is None:
        reason = screening.reason.value if screening.reason else "no_such_promise"
        await _settle(uow, claim.claim_id, "rejected", reason, screening.explanation)
        return None
    await uow.guarantee_claims.update(
        claim.claim_id, order_amount_minor=order.amount_minor, currency=order.currency
    )
    return Judgement(_report(row, order), policy, ORDER_UNKNOWN)


def _screen(claim: Any, order: KnownOrder, policy: GuaranteePolicy | None) -> ClaimScreening:
    if policy is None:
        return ClaimScreening(ScreeningOutcome.REJECT, None, "the merchant withdrew the promise")
    domain_claim = GuaranteeClaim(
        str(claim.claim_id),
        claim.customer_id,
        claim.merchant_id,
        claim.order_id,
        policy.promise,
        claim.filed_at,
    )
    screening = screen_claim(domain_claim, order, policy)
    if screening.outcome is ScreeningOutcome.ACCEPT:
        return stated_amount_problem(claim.order_amount_minor, claim.currency, order) or screening
    return screening


async def _settle(
    uow: RewardsUnitOfWork,
    claim_id: uuid.UUID,
    status: str,
    reason: str | None,
    explanation: str,
    compensation_id: uuid.UUID | None = None,
) -> None:
    await uow.guarantee_claims.update(
        claim_id,
        status=status,
        reason=reason if status == "rejected" else ORDER_UNKNOWN,
        explanation=explanation,
        compensation_id=compensation_id,
        decided_at=None if status == "in_review" else uow.now,
    )
