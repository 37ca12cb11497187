"""What the reports and gauges count across the books (read only)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.domain.catalogue import ClaimState

_WAITING = sa.text(
    """
    SELECT 'compensation' AS subject, count(*) AS n FROM compensations WHERE status = 'in_review'
    UNION ALL
    SELECT 'claim', count(*) FROM guarantee_claims WHERE status = 'in_review'
    UNION ALL
    SELECT 'catalogue_claim', count(*) FROM catalogue_claims WHERE state = :requested
    """
)


class ReportRepository:
    """Counts over the books."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def waiting_counts(self) -> dict[str, int]:
        """Held compensations, undecided guarantee claims, and catalogue claims waiting for
        the points service (each through a partial index on the waiting rows)."""
        rows = await self.conn.execute(_WAITING, {"requested": ClaimState.REQUESTED.value})
        return {row.subject: int(row.n) for row in rows}
