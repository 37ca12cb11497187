"""Accounts whose yearly tier review has come."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.accounts.repository import claim_due
from services.points.db import accounts


class TierRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def claim_due_reviews(self, now: datetime, batch_size: int) -> list[str]:
        """Lock up to `batch_size` accounts whose review is due by `now` (customer ids),
        through the partial index `accounts.next_review_at WHERE NOT NULL`."""
        rows = await claim_due(
            self.conn,
            [accounts.c.customer_id],
            due_at=accounts.c.next_review_at,
            now=now,
            batch_size=batch_size,
        )
        return [row.customer_id for row in rows]
