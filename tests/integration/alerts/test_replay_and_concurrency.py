"""No duplicate alerts: after replaying the purchases topic, and with scanners racing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from services.alerts.activity.repository import ActivityRepository
from services.alerts.domain.activity import ActivitySummary, apply_purchase
from services.alerts.domain.records import CustomerActivity
from services.alerts.lapse.service import AlertScanner
from shared.contracts.registry import decode_event
from shared.db import create_engine, outbox
from tests.integration.alerts.conftest import (
    AlertsHarness,
    alerts_service,
    day,
    every,
    shopping,
)
from tests.support.counting import publish, wait_until
from tests.support.infra import Databases, Infra

pytestmark = pytest.mark.integration

MINUTE = timedelta(minutes=1)
# Second scan: the 113-day window has passed for `twice` (last day 30) and for `weekly` after
# their comeback on day 53 (the 25-day absence broke their weekly rhythm: no rhythm rule).
FIRST_SCAN, SECOND_SCAN = day(28 + 22), day(28 + 25 + 114)


def _alert_snapshot(rows: list[Any]) -> list[tuple[Any, ...]]:
    return sorted((r["alert_id"], r["status"], r["closed_at"] is None) for r in rows)


async def test_replaying_the_purchases_topic_raises_no_duplicate_alerts(
    infra: Infra, databases: Databases, unique: str
) -> None:
    weekly, twice, marker = f"weekly-{unique}", f"twice-{unique}", f"marker-{unique}"
    pos, first_db = f"pos.{unique}", await databases.fresh("alerts")
    history = [*every(weekly, days=7, visits=5, last=28), *every(twice, days=30, visits=2, last=30)]
    comeback = [shopping(weekly, day(28 + 25))]
    async with alerts_service(infra, first_db, pos, f"alerts1.{unique}", f"g1-{unique}") as first:
        await first.publish(history)
        await first.settled()
        assert (await first.scan(FIRST_SCAN)).raised == 1
        await first.publish(comeback)
        await first.settled()
        assert (await first.scan(SECOND_SCAN)).raised == 2, "the 113-day customer, and weekly again"
        original = await first.alert_events(expected=6)
        alerts_before = _alert_snapshot(await first.rows("SELECT * FROM alerts"))

    # Replay 1: every purchase published again, and a new consumer group reads it all.
    await publish(infra.bootstrap_servers, pos, [*history, *comeback])
    await publish(infra.bootstrap_servers, pos, [shopping(marker, day(200), merchant="other")])
    async with alerts_service(infra, first_db, pos, f"alerts1.{unique}", f"g2-{unique}") as again:
        await _wait_for_customer(again, marker)
        for moment in (FIRST_SCAN, SECOND_SCAN, SECOND_SCAN + MINUTE):
            outcome = await again.scan(moment)
            assert (outcome.raised, outcome.escalated) == (0, 0), f"replay re-alerted: {outcome}"
        assert _alert_snapshot(await again.rows("SELECT * FROM alerts")) == alerts_before
        replayed = await again.alert_events(expected=len(original))
    assert sorted(str(e.event_id) for e in replayed) == sorted(str(e.event_id) for e in original), (
        "replaying the purchases must not publish a single extra alert event"
    )

    # Replay 2: a brand-new database rebuilt from the topic derives the very same alerts.
    rebuilt_db = await databases.fresh("alerts")
    async with alerts_service(infra, rebuilt_db, pos, f"alerts2.{unique}", f"g3-{unique}") as new:
        await _wait_for_customer(new, marker)
        assert (await new.scan(SECOND_SCAN)).raised == 2
        rebuilt = await new.alert_events(expected=5)  # 2 alerts, 2 follow-ups, 1 comeback
    before = {e.event_id: e for e in original}
    assert {e.event_id for e in rebuilt} <= set(before), "a replay derived an id never seen"
    for event in rebuilt:
        if event.type != "customer.reactivated":  # says what the service had done: may differ
            assert event == before[event.event_id], f"{event.type}: same id, other content"


async def _wait_for_customer(harness: AlertsHarness, customer: str) -> None:
    async def seen() -> object:
        found = await harness.scalar(
            "SELECT count(*) FROM customer_activity WHERE customer_id = :c", c=customer
        )
        return True if found == 1 else "the replay has not reached the last event yet"

    await wait_until(seen, timeout=30)


def _weekly_activity(customer: str) -> CustomerActivity:
    summary = ActivitySummary()
    for visit in range(4):
        summary = apply_purchase(summary, day(7 * visit), 5_000, "m1")
    return CustomerActivity(
        customer,
        summary,
        currency="EUR",
        merchant_spend_minor={"m1": summary.spend_minor},
        next_check_at=day(21 + 21),
    )


async def test_racing_scanners_open_each_alert_once_and_the_database_refuses_a_second(
    alerts_db: str, unique: str
) -> None:
    engine = create_engine(alerts_db, pool_size=4)
    customers = [f"c{i:03d}-{unique}" for i in range(300)]
    try:
        async with engine.begin() as conn:
            await ActivityRepository(conn).save([_weekly_activity(c) for c in customers])
        scanners = [AlertScanner(engine, _never(), batch_size=40) for _ in range(3)]
        outcomes = await asyncio.gather(*(s.scan_due(day(60)) for s in scanners))
        assert sum(o.raised for o in outcomes) == 300, f"each customer alerted once: {outcomes}"
        assert sum(o.raised > 0 for o in outcomes) >= 2, "SKIP LOCKED should share the work"
        async with engine.connect() as conn:
            per_customer = (
                await conn.execute(sa.text("SELECT count(*) FROM alerts GROUP BY customer_id"))
            ).scalars()
            assert set(per_customer) == {1}, "no customer may have two alerts"
            queued = [decode_event(v) for v in await conn.scalars(sa.select(outbox.c.value))]
        assert len({e.event_id for e in queued}) == len(queued) == 300
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(
                    sa.text(
                        "INSERT INTO alerts (alert_id, customer_id, kind, status, rule, reason,"
                        " value_at_risk_minor, currency, segment, last_purchase_at, tripped_at,"
                        " opened_at) VALUES (:id, :c, 'lapse', 'at_risk', 'inactivity', 'dup',"
                        " 0, 'EUR', 'C', now(), now(), now())"
                    ),
                    {"id": uuid.uuid4(), "c": customers[0]},
                )
    finally:
        await engine.dispose()


def _never() -> Any:
    from services.alerts.clock.service import FixedClock

    return FixedClock(day(0))  # unused: every scan here gets an explicit now
