"""The undecided rows the green channel escalates and announces, claimed once each.

Each query takes due rows with `FOR UPDATE SKIP LOCKED` through a partial index on the
undecided rows, and the caller marks them (`escalated_at`, `overdue_at`) in the same
transaction: exactly once per row, whatever the number of instances.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import compensations, guarantee_claims

_SUBJECTS = {
    "compensation": (compensations, compensations.c.created_at, compensations.c.compensation_id),
    "claim": (guarantee_claims, guarantee_claims.c.filed_at, guarantee_claims.c.claim_id),
}


class GreenChannelRepository:
    """Undecided claims and held compensations, by how long they have waited."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def take_due(self, subject: str, mark: str, cutoff: datetime, n: int) -> list[Any]:
        """Up to `n` undecided rows of `subject` waiting since `cutoff` or longer, not yet
        marked `mark`; they are marked at `now` by `mark_taken`."""
        table, since, _ = _SUBJECTS[subject]
        query = (
            sa.select(table)
            .where(table.c.status == "in_review", table.c[mark].is_(None), since <= cutoff)
            .order_by(since)
            .limit(n)
            .with_for_update(skip_locked=True)
        )
        return list((await self.conn.execute(query)).all())

    async def mark_taken(self, subject: str, rows: list[Any], mark: str, now: datetime) -> None:
        table, _, key = _SUBJECTS[subject]
        ids = [getattr(row, key.name) for row in rows]
        if ids:
            await self.conn.execute(sa.update(table).where(key.in_(ids)).values({mark: now}))
