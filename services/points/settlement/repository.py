"""Orders whose return window has ended and that have not been settled yet."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.accounts.repository import claim_due
from services.points.db import order_earnings


class SettlementRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def claim_due_orders(self, now: datetime, batch_size: int) -> Sequence[sa.Row[Any]]:
        """Lock up to `batch_size` unsettled orders due by `now` (order_id, customer_id),
        through the partial index `order_earnings.settles_at WHERE settled_at IS NULL`."""
        return await claim_due(
            self.conn,
            [order_earnings.c.order_id, order_earnings.c.customer_id],
            due_at=order_earnings.c.settles_at,
            now=now,
            batch_size=batch_size,
            also=[order_earnings.c.settled_at.is_(None)],
        )
