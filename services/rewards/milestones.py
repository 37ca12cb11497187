"""Milestones and referral rewards, fired as the projection moves, on settled purchases only.

A purchase counts once its return window has ended (`points.settled`), so buying and
returning within the window earns no milestone and no referral reward:
- "every N lifetime points" rules count `settled_lifetime_points` (what stayed of every
  settled order), never the points of `points.accrued`;
- "tier reached" rules fire on `tier.changed` (the points service moves tiers only on
  settled purchases), from its `previous_tier` to its `tier`;
- the referral reward is paid at the referred customer's first settled purchase
  (`first_settled_purchase` of a `points.settled` that is not fully returned), not at the
  first `points.accrued`.

Milestone rules are rows of `milestone_rules`. Each firing inserts its idempotency key into
`milestones_reached` first and pays only if that insert took, so a replayed or re-derived
event never pays twice. Referral rewards are paid as the `referral_programme` row says at
that moment (read once per batch); the `referrals` row is marked rewarded in the same
transaction, and each side's voucher or credit carries a key that depends only on the
referred customer.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from services.rewards.compensation import Delivery
from services.rewards.db import milestone_rules, milestones_reached, referrals
from services.rewards.domain.grants import Grant, PointsGrant, VoucherGrant
from services.rewards.domain.milestones import (
    EveryLifetimePoints,
    LoyaltyProjection,
    MilestoneRule,
    MilestoneRulebook,
    TierLadder,
    TierReached,
)
from services.rewards.domain.milestones import (
    milestones_reached as reached_between,
)
from services.rewards.domain.referrals import Referral, rewards_for_first_purchase
from services.rewards.events import rewards_event
from services.rewards.issuing import VoucherRequest, issue_voucher
from services.rewards.projection import CustomerView, ViewChange
from services.rewards.referrals import StoredProgramme, load_programme
from shared.contracts.envelope import EventEnvelope
from shared.contracts.points import PointsSettled, TierChanged
from shared.kafka.handlers import BatchContext

log = logging.getLogger(__name__)
LADDER = TierLadder(("member", "silver", "gold", "platinum"))
_RULEBOOK = "rewards.milestone_rulebook"
_PROGRAMME = "rewards.referral_programme"


def rule_from_row(row: Any) -> MilestoneRule:
    grant: Grant = (
        VoucherGrant(row.grant_reward_code)
        if row.grant_reward_code is not None
        else PointsGrant(int(row.grant_points))
    )
    if row.kind == "every_lifetime_points":
        return EveryLifetimePoints(row.rule_key, int(row.every_points), grant)
    return TierReached(row.rule_key, row.tier, grant)


async def _rulebook(ctx: BatchContext) -> MilestoneRulebook:
    book = ctx.state.get(_RULEBOOK)
    if not isinstance(book, MilestoneRulebook):
        rows = await ctx.conn.execute(
            sa.select(milestone_rules).where(milestone_rules.c.active).order_by("rule_key")
        )
        book = MilestoneRulebook(LADDER, tuple(rule_from_row(r) for r in rows))
        ctx.state[_RULEBOOK] = book
    return book


async def _programme(ctx: BatchContext) -> StoredProgramme | None:
    """The referral programme, read once per batch (None stored as "none configured")."""
    if _PROGRAMME not in ctx.state:
        ctx.state[_PROGRAMME] = await load_programme(ctx.conn)
    stored: StoredProgramme | None = ctx.state[_PROGRAMME]
    return stored


async def grant(
    ctx: BatchContext, delivery: Delivery, customer_id: str, what: Grant, origin: str, key: str
) -> None:
    """Pay a voucher (issued here) or points (requested from the points service)."""
    if isinstance(what, VoucherGrant):
        request = VoucherRequest(customer_id, what.reward_code, origin, key)
        await issue_voucher(
            ctx.conn,
            delivery.outbox,
            delivery.topics.rewards,
            request,
            ctx.now,
            delivery.default_voucher_days,
        )
        return
    credit = {"credit_id": key, "points": what.points, "reason": f"{origin}: {key}"}
    event = rewards_event("points.credit_requested", customer_id, key, ctx.now, credit)
    delivery.outbox.emit(delivery.topics.rewards, event)


def _settled_move(
    before: CustomerView | None, after: CustomerView
) -> tuple[LoyaltyProjection, LoyaltyProjection]:
    """Settled points before and after, the tier held still (a settlement moves no tier)."""
    previous = 0 if before is None else before.settled_points
    return (
        LoyaltyProjection(previous, after.tier),
        LoyaltyProjection(after.settled_points, after.tier),
    )


def _tier_move(event: TierChanged, after: CustomerView) -> tuple[LoyaltyProjection, ...]:
    """The tier move `tier.changed` reports, the settled points held still."""
    return (
        LoyaltyProjection(after.settled_points, event.data.previous_tier.value),
        LoyaltyProjection(after.settled_points, event.data.tier.value),
    )


async def _milestones(
    ctx: BatchContext,
    delivery: Delivery,
    customer_id: str,
    move: tuple[LoyaltyProjection, ...],
) -> None:
    book = await _rulebook(ctx)
    if not book.rules:
        return
    previous, current = move
    for firing in reached_between(customer_id, book, previous, current):
        took = await ctx.conn.scalar(
            pg.insert(milestones_reached)
            .values(
                idempotency_key=firing.idempotency_key,
                customer_id=firing.customer_id,
                rule_key=firing.rule_key,
                occurrence=firing.occurrence,
                reached_at=ctx.now,
            )
            .on_conflict_do_nothing()
            .returning(milestones_reached.c.idempotency_key)
        )
        if took is not None:
            await grant(ctx, delivery, firing.customer_id, firing.grant, "milestone", took)


async def _referral(ctx: BatchContext, delivery: Delivery, event: PointsSettled) -> None:
    row = (
        await ctx.conn.execute(
            sa.update(referrals)
            .where(referrals.c.referee_id == event.customer_id, referrals.c.rewarded_at.is_(None))
            .values(rewarded_at=ctx.now)
            .returning(referrals.c.referrer_id)
        )
    ).first()
    if row is None:
        return
    stored = await _programme(ctx)
    if stored is None or not stored.active:
        log.info("referral of %s: no active programme, nothing paid", event.customer_id)
        return
    referral = Referral(row.referrer_id, event.customer_id)
    for reward in rewards_for_first_purchase(referral, stored.programme, event.customer_id, True):
        await grant(
            ctx, delivery, reward.customer_id, reward.grant, "referral", reward.idempotency_key
        )


def on_projection_change(delivery: Delivery) -> ViewChange:
    """What fires when one points event moves a customer's view: only a settlement (points
    milestones, the referral) and a tier change (tier milestones) can pay anything."""

    async def changed(
        ctx: BatchContext, event: EventEnvelope, before: CustomerView | None, after: CustomerView
    ) -> None:
        if isinstance(event, PointsSettled):
            await _milestones(ctx, delivery, after.customer_id, _settled_move(before, after))
            if event.data.first_settled_purchase and not event.data.fully_returned:
                await _referral(ctx, delivery, event)
        elif isinstance(event, TierChanged):
            await _milestones(ctx, delivery, after.customer_id, _tier_move(event, after))

    return changed
