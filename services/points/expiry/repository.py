"""Lots whose validity has ended with points left in them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.accounts.repository import claim_due
from services.points.db import lots


class ExpiryRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def claim_due_lots(self, now: datetime, batch_size: int) -> Sequence[sa.Row[Any]]:
        """Lock up to `batch_size` lots expiring by `now` (lot_id, customer_id), through the
        partial index `lots.expires_at WHERE remaining > 0`."""
        return await claim_due(
            self.conn,
            [lots.c.lot_id, lots.c.customer_id],
            due_at=lots.c.expires_at,
            now=now,
            batch_size=batch_size,
            also=[lots.c.remaining > 0],
        )
