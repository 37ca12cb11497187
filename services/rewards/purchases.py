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
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.claims import outcome
from services.rewards.compensation import BreachReport, Delivery, lock_parties
from services.rewards.db import guarantee_claims
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
from services.rewards.incidents import Judgement, batch_policies, judge
from services.rewards.orders import (
    ORDER_UNKNOWN,
    held_measurement,
    record_purchases,
    record_returns,
    recorded_orders,
    take_held_reports,
)
from shared.contracts.pos import PurchaseCompleted, PurchaseReturned
from shared.kafka.handlers import BatchContext

log = logging.getLogger(__name__)


async def apply_returns(ctx: BatchContext, events: Sequence[PurchaseReturned]) -> None:
    await record_returns(ctx.conn, events)


async def apply_purchases(
    ctx: BatchContext, events: Sequence[PurchaseCompleted], delivery: Delivery
) -> None:
    """Record the purchases, then judge every report that waited for them, in order.

    The party locks are taken first, as a claim or an incident takes them before it reads
    the order record: whichever commits first, the other sees it, so a report is never
    held after its purchase went by.
    """
    merchants = (e.data.merchant_id for e in events)
    await lock_parties(ctx.conn, merchants, (e.customer_id for e in events))
    new = await record_purchases(ctx.conn, events)
    held = await take_held_reports(ctx.conn, new)
    if not held:
        return
    known = await recorded_orders(ctx.conn, new)
    wanted = {(row["merchant_id"], PromiseKind(row["promise_kind"])) for row in held}
    policies = await batch_policies(ctx, wanted)
    judged: list[Judgement] = []
    claims: list[tuple[int, uuid.UUID]] = []
    for row in held:
        order = known[row["order_id"]]
        policy = policies[(row["merchant_id"], PromiseKind(row["promise_kind"]))]
        if row["trigger"] == "claim":
            item = await _released_claim(ctx, row, order, policy)
            if item is not None:
                claims.append((len(judged), row["claim_id"]))
                judged.append(item)
        elif policy is not None and _same_parties(row, order) and not order.returned_in_full:
            judged.append(Judgement(_report(row, order), policy))
    assessments = await judge(ctx, judged, delivery)
    for index, claim_id in claims:
        status, explanation = await outcome(ctx.conn, assessments[index])
        compensation_id = assessments[index].compensation_id
        await _settle(ctx.conn, claim_id, status, None, explanation, ctx.now, compensation_id)


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
    ctx: BatchContext, row: dict[str, Any], order: KnownOrder, policy: GuaranteePolicy | None
) -> Judgement | None:
    """The claim's judgement once its order is known, or None after settling a refusal."""
    claim = (
        await ctx.conn.execute(
            sa.select(guarantee_claims).where(guarantee_claims.c.claim_id == row["claim_id"])
        )
    ).one()
    screening = _screen(claim, order, policy)
    if screening.outcome is ScreeningOutcome.REJECT or policy is None:
        reason = screening.reason.value if screening.reason else "no_such_promise"
        await _settle(ctx.conn, claim.claim_id, "rejected", reason, screening.explanation, ctx.now)
        return None
    await ctx.conn.execute(
        sa.update(guarantee_claims)
        .where(guarantee_claims.c.claim_id == claim.claim_id)
        .values(order_amount_minor=order.amount_minor, currency=order.currency)
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
    conn: AsyncConnection,
    claim_id: uuid.UUID,
    status: str,
    reason: str | None,
    explanation: str,
    now: datetime,
    compensation_id: uuid.UUID | None = None,
) -> None:
    await conn.execute(
        sa.update(guarantee_claims)
        .where(guarantee_claims.c.claim_id == claim_id)
        .values(
            status=status,
            reason=reason if status == "rejected" else ORDER_UNKNOWN,
            explanation=explanation,
            compensation_id=compensation_id,
            decided_at=None if status == "in_review" else now,
        )
    )
