"""Value segments (A/B/C by revenue rank per merchant) at scan time, without ranking everyone.

Ranking all of a merchant's customers is O(customers log customers): fine for a periodic job,
wrong for every alert. So the job (`refresh_value_segments`) ranks each merchant's customers
with the domain's `cutoffs_from_revenues` and keeps only two numbers per merchant: the lowest
revenue still in A and the lowest still in B. An alert then places the customer by comparing
their CURRENT revenue with those cutoffs. This is exact when the cutoffs are fresh and an
approximation between refreshes (a customer who just overtook the cutoff is already A); the
alternative, a stored rank per customer, would be just as stale and a million rows bigger.
A merchant with no cutoffs yet is ranked on the spot, once, and stored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts.clock.service import AlertsClock
from services.alerts.domain.records import CustomerActivity
from services.alerts.domain.segments import (
    ValueSegment,
    cutoffs_from_revenues,
    segment_from_cutoffs,
)
from services.alerts.model.repository import exclusive
from services.alerts.segments.repository import SegmentRepository
from services.alerts.uow import AlertsUnitOfWork

_SEGMENTS_LOCK = 0x41_1E_27_02


async def segments_for(
    segments: SegmentRepository, activities: Iterable[CustomerActivity], now: datetime
) -> dict[str, ValueSegment]:
    """Each customer's segment at their home merchant (C when they have none)."""
    chosen = list(activities)
    homes = {a.home_merchant_id for a in chosen if a.home_merchant_id}
    cutoffs = await segments.cutoffs(homes)
    missing = [m for m in sorted(homes) if m not in cutoffs]
    computed = [cutoffs_from_revenues(m, await segments.merchant_revenues(m), now) for m in missing]
    await segments.store(computed)
    cutoffs.update((c.merchant_id, c) for c in computed)
    return {
        a.customer_id: segment_from_cutoffs(
            cutoffs.get(a.home_merchant_id or ""), a.home_merchant_revenue_minor
        )
        for a in chosen
    }


async def refresh_value_segments(segments: SegmentRepository, now: datetime) -> int:
    """Re-rank every merchant's customers; returns how many merchants were ranked.

    One pass over the summaries (a periodic job, like the model refit); scans never do this.
    """
    revenues: defaultdict[str, list[int]] = defaultdict(list)
    async for merchant_id, revenue in segments.all_revenues():
        revenues[merchant_id].append(revenue)
    cutoffs = [cutoffs_from_revenues(m, values, now) for m, values in sorted(revenues.items())]
    await segments.store(cutoffs)
    return len(cutoffs)


async def refresh_segments(engine: AsyncEngine, clock: AlertsClock) -> int | None:
    """Re-rank every merchant's customers into A/B/C cutoffs; None if skipped this round
    (another instance holds the job's advisory lock, or event time has not started)."""
    async with exclusive(engine, _SEGMENTS_LOCK) as held:
        if not held:
            return None
        async with AlertsUnitOfWork.begin(engine, clock) as uow:
            if await clock.now(uow.conn) is None:
                return None
            return await refresh_value_segments(uow.segments, uow.now)
