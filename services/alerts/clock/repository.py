"""The event clock: the latest `occurred_at` the consumer has seen, per source (`event_clock`)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.db import event_clock

POS_CLOCK = "pos"  # the event clock fed by pos.purchases


class EventClockRepository:
    """Reads and advances the event clock in the unit of work's transaction; never commits."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def advance(self, moment: datetime, clock: str = POS_CLOCK) -> None:
        """The clock moves to `moment` if that is later; it never goes back."""
        statement = pg_insert(event_clock).values(clock=clock, latest_occurred_at=moment)
        await self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=["clock"],
                set_={"latest_occurred_at": moment, "updated_at": sa.func.now()},
                where=event_clock.c.latest_occurred_at < moment,
            )
        )

    async def read(self, clock: str = POS_CLOCK) -> datetime | None:
        query = sa.select(event_clock.c.latest_occurred_at).where(event_clock.c.clock == clock)
        return await self.conn.scalar(query)
