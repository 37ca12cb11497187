"""The alerts unit of work: one transaction per request, batch or scan batch, committed with
its outbox or not at all, at the moment the service's clock says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from services.alerts.clock.service import EventTimeClock, FixedClock
from services.alerts.domain.activity import ActivitySummary, apply_purchase
from services.alerts.domain.records import CustomerActivity
from services.alerts.followups.events import follow_up_due
from services.alerts.uow import AlertsUnitOfWork
from shared.db import create_engine, outbox
from tests.integration.alerts.conftest import day

pytestmark = pytest.mark.integration


class _Refused(Exception):
    pass


async def test_a_failing_use_case_leaves_neither_its_rows_nor_its_events(alerts_db: str) -> None:
    engine = create_engine(alerts_db)
    first_timer = CustomerActivity(
        "uow-1",
        apply_purchase(ActivitySummary(), day(0), 4_000, "m-1"),
        currency="EUR",
        follow_up_due_at=day(7),
    )
    try:
        with pytest.raises(_Refused):
            async with AlertsUnitOfWork.begin(engine, FixedClock(day(1))) as uow:
                await uow.activities.save([first_timer])
                await uow.event_clock.advance(day(1))
                raise _Refused
        async with engine.connect() as conn:
            rows = await conn.scalar(sa.text("SELECT count(*) FROM customer_activity"))
            queued = await conn.scalar(sa.select(sa.func.count()).select_from(outbox))
        assert rows == 0 and queued == 0, "a failed unit of work must roll everything back"

        async with AlertsUnitOfWork.begin(engine, FixedClock(day(1))) as uow:
            await uow.activities.save([first_timer])
            assert uow.now == day(1), "a fixed clock's moment is the unit of work's now"
            uow.emit("alerts.test", follow_up_due(first_timer))
        async with engine.connect() as conn:
            rows = await conn.scalar(sa.text("SELECT count(*) FROM customer_activity"))
            queued = await conn.scalar(sa.select(sa.func.count()).select_from(outbox))
        assert rows == 1 and queued == 1, "a unit of work commits its rows with its events"
    finally:
        await engine.dispose()


async def test_event_time_is_the_latest_purchase_seen_and_wall_time_before_any(
    alerts_db: str,
) -> None:
    engine = create_engine(alerts_db)
    try:
        before = datetime.now(UTC)
        async with AlertsUnitOfWork.begin(engine, EventTimeClock()) as uow:
            assert before <= uow.now <= datetime.now(UTC), "no event yet: wall time"
            await uow.event_clock.advance(day(3))
        async with AlertsUnitOfWork.begin(engine, EventTimeClock()) as uow:
            assert uow.now == day(3)
            await uow.event_clock.advance(day(2))  # an older event never moves it back
        async with AlertsUnitOfWork.begin(engine, EventTimeClock()) as uow:
            assert uow.now == day(3)
        async with AlertsUnitOfWork.begin(engine, lambda: day(9) + timedelta(hours=1)) as uow:
            assert uow.now == day(9) + timedelta(hours=1), "a plain callable is a clock too"
    finally:
        await engine.dispose()
