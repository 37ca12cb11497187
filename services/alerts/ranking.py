"""Value segments (A/B/C by revenue rank per merchant) at scan time, without ranking everyone.

Ranking all of a merchant's customers is O(customers log customers): fine for a periodic job,
wrong for every alert. So the job (`refresh_value_segments`) ranks each merchant's customers
with the domain's `assign_value_segments` and keeps only two numbers per merchant: the lowest
revenue still in A and the lowest still in B. An alert then places the customer by comparing
their CURRENT revenue with those cutoffs. This is exact when the cutoffs are fresh and an
approximation between refreshes (a customer who just overtook the cutoff is already A); the
alternative, a stored rank per customer, would be just as stale and a million rows bigger.
A merchant with no cutoffs yet is ranked on the spot, once, and stored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.db import value_segment_cutoffs
from services.alerts.domain.segments import SegmentShares, ValueSegment, assign_value_segments
from services.alerts.records import CustomerActivity


@dataclass(frozen=True, slots=True)
class SegmentCutoffs:
    """Lowest revenue still in A and in B at one merchant when the ranks were last computed."""

    merchant_id: str
    a_min_revenue_minor: int | None
    b_min_revenue_minor: int | None
    customers: int
    computed_at: datetime


async def load_cutoffs(
    conn: AsyncConnection, merchant_ids: Iterable[str]
) -> dict[str, SegmentCutoffs]:
    ids = list(set(merchant_ids))
    if not ids:
        return {}
    query = sa.select(value_segment_cutoffs).where(value_segment_cutoffs.c.merchant_id.in_(ids))
    rows = (await conn.execute(query)).mappings().all()
    return {row["merchant_id"]: SegmentCutoffs(**row) for row in rows}


async def store_cutoffs(conn: AsyncConnection, cutoffs: Sequence[SegmentCutoffs]) -> None:
    if not cutoffs:
        return
    rows = [
        {
            "merchant_id": c.merchant_id,
            "a_min_revenue_minor": c.a_min_revenue_minor,
            "b_min_revenue_minor": c.b_min_revenue_minor,
            "customers": c.customers,
            "computed_at": c.computed_at,
        }
        for c in cutoffs
    ]
    statement = pg_insert(value_segment_cutoffs)
    updated = {name: statement.excluded[name] for name in rows[0] if name != "merchant_id"}
    await conn.execute(
        statement.on_conflict_do_update(index_elements=["merchant_id"], set_=updated), rows
    )


async def merchant_revenues(conn: AsyncConnection, merchant_id: str) -> list[int]:
    """Net revenue of every customer of one merchant (for ranking)."""
    query = sa.text(
        "SELECT CAST(merchant_spend_minor ->> :m AS bigint) AS revenue FROM customer_activity "
        "WHERE merchant_spend_minor ->> :m IS NOT NULL"
    )
    return [int(v) for v in (await conn.execute(query, {"m": merchant_id})).scalars()]


def cutoffs_from_revenues(
    merchant_id: str,
    revenues: Sequence[int],
    computed_at: datetime,
    shares: SegmentShares = SegmentShares(),
) -> SegmentCutoffs:
    """The lowest revenue in A and in B once `revenues` are ranked by the domain rule."""
    segments = assign_value_segments(dict(enumerate(revenues)), shares)
    lowest: dict[ValueSegment, int] = {}
    for index, segment in segments.items():
        revenue = revenues[index]
        if segment is not ValueSegment.C and revenue < lowest.get(segment, revenue + 1):
            lowest[segment] = revenue
    return SegmentCutoffs(
        merchant_id,
        lowest.get(ValueSegment.A),
        lowest.get(ValueSegment.B),
        len(revenues),
        computed_at,
    )


def segment_from_cutoffs(cutoffs: SegmentCutoffs | None, revenue_minor: int) -> ValueSegment:
    """A, B or C for a customer's current revenue at the merchant (C without revenue)."""
    if cutoffs is None or revenue_minor <= 0:
        return ValueSegment.C
    if cutoffs.a_min_revenue_minor is not None and revenue_minor >= cutoffs.a_min_revenue_minor:
        return ValueSegment.A
    if cutoffs.b_min_revenue_minor is not None and revenue_minor >= cutoffs.b_min_revenue_minor:
        return ValueSegment.B
    return ValueSegment.C


async def segments_for(
    conn: AsyncConnection, activities: Iterable[CustomerActivity], now: datetime
) -> dict[str, ValueSegment]:
    """Each customer's segment at their home merchant (C when they have none)."""
    chosen = list(activities)
    homes = {a.home_merchant_id for a in chosen if a.home_merchant_id}
    cutoffs = await load_cutoffs(conn, homes)
    missing = [m for m in sorted(homes) if m not in cutoffs]
    computed = [cutoffs_from_revenues(m, await merchant_revenues(conn, m), now) for m in missing]
    await store_cutoffs(conn, computed)
    cutoffs.update((c.merchant_id, c) for c in computed)
    return {
        a.customer_id: segment_from_cutoffs(
            cutoffs.get(a.home_merchant_id or ""), a.home_merchant_revenue_minor
        )
        for a in chosen
    }


_ALL_REVENUES = sa.text(
    "SELECT m.key AS merchant_id, CAST(m.value AS bigint) AS revenue "
    "FROM customer_activity CROSS JOIN LATERAL jsonb_each_text(merchant_spend_minor) AS m"
)


async def refresh_value_segments(conn: AsyncConnection, now: datetime) -> int:
    """Re-rank every merchant's customers; returns how many merchants were ranked.

    One pass over the summaries (a periodic job, like the model refit); scans never do this.
    """
    revenues: defaultdict[str, list[int]] = defaultdict(list)
    result = await conn.stream(_ALL_REVENUES)
    async for merchant_id, revenue in result:
        revenues[merchant_id].append(int(revenue))
    cutoffs = [cutoffs_from_revenues(m, values, now) for m, values in sorted(revenues.items())]
    await store_cutoffs(conn, cutoffs)
    return len(cutoffs)
