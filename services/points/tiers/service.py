"""Tiers: a customer moves up when a settlement completes a qualifying window, and at the
yearly review keeps the tier the window supports, dropping at most one level.

The review is a due-time job (see `jobs`): accounts come due through a partial index
(`accounts.next_review_at WHERE NOT NULL`) claimed with `FOR UPDATE SKIP LOCKED`; an
account busy in a consumer or an HTTP request is skipped, never waited for, and reviewed
by the next run. Each is judged on the window ending at its own review date (not at the
job's clock), so a job that runs late gives the same answer.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.points.domain.book import Account, Changes, StoredOrder
from services.points.domain.moments import add_months, require_aware
from services.points.domain.programme import ProgrammeRules
from services.points.domain.tiers import (
    Tier,
    qualifying_activity,
    tier_after_settlement,
    tier_at_yearly_review,
)
from services.points.ledger.service import run_in_batches
from services.points.rules.service import rule_book
from services.points.tiers.events import tier_changed
from services.points.uow import PointsUnitOfWork
from shared.contracts.envelope import EventEnvelope
from shared.contracts.points import TierChangeReason
from shared.contracts.topics import Topics

TIER_TERM_MONTHS = 12  # a tier reached is kept at least until its yearly review
_RANK = {tier: tier.rank for tier in Tier}  # Tier.rank searches a tuple; settlement asks often


async def review_due_tiers(
    engine: AsyncEngine, now: datetime, *, points_topic: str = Topics.POINTS, batch_size: int = 200
) -> int:
    """Run every yearly tier review due at `now`; returns the accounts reviewed."""
    require_aware(now, "now")
    return await run_in_batches(
        engine, now, lambda uow: review_batch(uow, points_topic, batch_size), batch_size
    )


async def review_batch(
    uow: PointsUnitOfWork, points_topic: str, batch_size: int
) -> tuple[int, int]:
    """Review up to `batch_size` accounts whose review date has come.

    Each is judged on the window ending at its own review date (not at `now`), so a job
    that runs late gives the same answer; a customer whose reviews were missed for two
    years is reviewed twice, dropping at most one level each time. Returns (reviewed,
    claimed).
    """
    now = uow.now
    due = await uow.tiers.claim_due_reviews(now, batch_size)
    found = await uow.accounts.lock_if_free(due)
    if not found:
        return 0, 0
    book = await rule_book(uow)
    earliest = min(a.next_review_at for a in found.values() if a.next_review_at is not None)
    await uow.orders.load(found, window_since=add_months(earliest, -book.longest_window_months))
    changes = Changes()
    for account in found.values():
        review_at = account.next_review_at
        assert review_at is not None
        rules = book.in_force(review_at)
        for event in review_tier(account, rules, review_at, max(now, review_at), changes):
            uow.emit(points_topic, event)
    await uow.save(found, changes)
    return len(found), len(due)


def review_tier(
    account: Account, rules: ProgrammeRules, review_at: datetime, as_of: datetime, changes: Changes
) -> list[EventEnvelope]:
    """The yearly review: the tier the window supports, but at most one level down."""
    purchases = account.qualifying_purchases()
    previous = account.tier
    account.tier = tier_at_yearly_review(previous, purchases, review_at, rules.tiers)
    account.next_review_at = (
        add_months(review_at, TIER_TERM_MONTHS) if account.tier is not Tier.MEMBER else None
    )
    changes.accounts.add(account.customer_id)
    if account.tier is previous:
        return []
    account.tier_changed_at = review_at
    activity = qualifying_activity(purchases, review_at, rules.tiers)
    cause = f"tier-review:{account.customer_id}:{review_at.isoformat()}"
    programme = rules.earning.currency_rates
    return [
        tier_changed(
            cause,
            account,
            previous,
            TierChangeReason.YEARLY_REVIEW,
            activity,
            programme,
            review_at,
            as_of,
        )
    ]


def raise_tier(
    account: Account, order: StoredOrder, rules: ProgrammeRules, at: datetime, as_of: datetime
) -> list[EventEnvelope]:
    """Move up when the window ending at this settlement qualifies for more."""
    policy = rules.tiers
    higher = [t for t in policy.thresholds if _RANK[t.tier] > _RANK[account.tier]]
    if not higher or len(account.orders) < higher[0].min_purchases:
        return []  # cannot qualify yet: spares the window count on most settlements
    purchases = account.qualifying_purchases()
    previous = account.tier
    reached = tier_after_settlement(previous, purchases, at, policy)
    if reached is previous:
        return []
    account.tier, account.tier_changed_at = reached, at
    account.next_review_at = add_months(at, TIER_TERM_MONTHS)
    activity = qualifying_activity(purchases, at, policy)
    programme = rules.earning.currency_rates
    cause = f"settlement:{order.order_id}"
    return [
        tier_changed(
            cause, account, previous, TierChangeReason.QUALIFIED, activity, programme, at, as_of
        )
    ]
