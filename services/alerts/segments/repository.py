"""Value-segment cutoffs and the revenues they are ranked from (`value_segment_cutoffs`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.db import value_segment_cutoffs
from services.alerts.domain.segments import SegmentCutoffs

_ALL_REVENUES = sa.text(
    "SELECT m.key AS merchant_id, CAST(m.value AS bigint) AS revenue "
    "FROM customer_activity CROSS JOIN LATERAL jsonb_each_text(merchant_spend_minor) AS m"
)
_MERCHANT_REVENUES = sa.text(
    "SELECT CAST(merchant_spend_minor ->> :m AS bigint) AS revenue FROM customer_activity "
    "WHERE merchant_spend_minor ->> :m IS NOT NULL"
)


class SegmentRepository:
    """Loads and saves cutoffs in the unit of work's transaction; never commits."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def cutoffs(self, merchant_ids: Iterable[str]) -> dict[str, SegmentCutoffs]:
        ids = list(set(merchant_ids))
        if not ids:
            return {}
        query = sa.select(value_segment_cutoffs).where(value_segment_cutoffs.c.merchant_id.in_(ids))
        rows = (await self.conn.execute(query)).mappings().all()
        return {row["merchant_id"]: SegmentCutoffs(**row) for row in rows}

    async def store(self, cutoffs: Sequence[SegmentCutoffs]) -> None:
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
        await self.conn.execute(
            statement.on_conflict_do_update(index_elements=["merchant_id"], set_=updated), rows
        )

    async def merchant_revenues(self, merchant_id: str) -> list[int]:
        """Net revenue of every customer of one merchant (for ranking)."""
        result = await self.conn.execute(_MERCHANT_REVENUES, {"m": merchant_id})
        return [int(v) for v in result.scalars()]

    async def all_revenues(self) -> AsyncIterator[tuple[str, int]]:
        """(merchant, revenue) of every customer at every merchant, streamed."""
        result = await self.conn.stream(_ALL_REVENUES)
        async for merchant_id, revenue in result:
            yield merchant_id, int(revenue)
