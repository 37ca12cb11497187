"""The alerts service's unit of work: one transaction, its outbox, and every repository.

A use case loads, changes and saves through `uow.<repository>` and queues its events with
`uow.emit`; it never commits. An HTTP route opens one with `AlertsUnitOfWork.begin(engine,
clock)` (committed with the outbox on success, rolled back on error), a consumer handler
wraps its batch with `AlertsUnitOfWork.of_batch(ctx)`, a scanner batch with `begin` and the
moment it scans at.

`begin` also takes the service's `AlertsClock`, which needs the transaction to tell the time
(event time is a row): `now` is then that clock's time, or wall time before event time has
started (`clock.service.service_now`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Self

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.alerts.activity.repository import ActivityRepository, PurchaseHistoryRepository
from services.alerts.clock.repository import EventClockRepository
from services.alerts.clock.service import AlertsClock, service_now
from services.alerts.lapse.repository import AlertRepository
from services.alerts.model.repository import ModelRepository
from services.alerts.segments.repository import SegmentRepository
from services.alerts.thresholds.repository import ThresholdRepository
from shared.outbox import OutboxWriter
from shared.uow import UnitOfWork


class AlertsUnitOfWork(UnitOfWork):
    def __init__(self, conn: AsyncConnection, outbox: OutboxWriter, now: datetime) -> None:
        super().__init__(conn, outbox, now)
        self.activities = ActivityRepository(conn)
        self.purchases = PurchaseHistoryRepository(conn)
        self.alerts = AlertRepository(conn)
        self.thresholds = ThresholdRepository(conn)
        self.models = ModelRepository(conn)
        self.segments = SegmentRepository(conn)
        self.event_clock = EventClockRepository(conn)

    @classmethod
    @asynccontextmanager
    async def begin(
        cls, engine: AsyncEngine, clock: Callable[[], datetime] | AlertsClock
    ) -> AsyncIterator[Self]:
        """A new transaction at the clock's now: commits with its outbox, or rolls back."""
        async with engine.begin() as conn:
            if callable(clock):
                now = clock()
            else:
                now = await service_now(conn, clock)
            uow = cls(conn, OutboxWriter(), now)
            yield uow
            await uow.outbox.flush(conn)

    @classmethod
    def of_request(cls, request: Request) -> AbstractAsyncContextManager[Self]:
        """`begin` on the app's engine and clock: the unit of work of one HTTP request."""
        return cls.begin(request.app.state.engine, request.app.state.alerts_clock)
