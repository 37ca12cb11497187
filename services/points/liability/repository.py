"""What the programme owes: live points per merchant, and the debt customers carry."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.db import accounts, lots
from services.points.domain.balances import MerchantLiability


class LiabilityRepository:
    """Set-based reads over every customer's lots and accounts (no locks)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def by_merchant(
        self, now: datetime, merchant_id: str | None = None
    ) -> list[MerchantLiability]:
        """Available and pending points outstanding per merchant (None: programme-wide
        credits); live lots only (remaining > 0, not yet expired). With `merchant_id`, that
        merchant's row only."""
        query = (
            sa.select(
                lots.c.merchant_id,
                sa.func.coalesce(
                    sa.func.sum(lots.c.remaining).filter(lots.c.pending_until <= now), 0
                ),
                sa.func.coalesce(
                    sa.func.sum(lots.c.remaining).filter(lots.c.pending_until > now), 0
                ),
            )
            .where(lots.c.remaining > 0, lots.c.expires_at > now)
            .group_by(lots.c.merchant_id)
            .order_by(lots.c.merchant_id.nulls_last())
        )
        if merchant_id is not None:
            query = query.where(lots.c.merchant_id == merchant_id)
        rows = await self.conn.execute(query)
        return [MerchantLiability(r[0], int(r[1]), int(r[2])) for r in rows]

    async def total_debt(self) -> int:
        """Points all customers owe back after returns of points already spent."""
        total = await self.conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(accounts.c.debt), 0)))
        return int(total or 0)
