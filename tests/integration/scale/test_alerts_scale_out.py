"""Three alerts instances in one group on Apache Kafka, one crashed and one stopped
mid-stream, scanning every second: one open alert per customer and kind.

1,500 customers bought twice, the last time 200 days ago (past the 113-day window);
every purchase is sent, 10% of them twice. At the end each customer has exactly one
lapse alert and its `alert.raised` event (by distinct event id) on the alerts topic.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shared.contracts.alerts import AlertRaised
from shared.contracts.registry import decode_event
from shared.kafka.admin import ensure_topics
from tests.integration.scale.support import (
    at_least,
    processed_events,
    running_instances,
    send_keyed,
    send_through_a_crash_and_a_stop,
    wait_for_owners,
)
from tests.support.counting import wait_until
from tests.support.dlq import read_topic
from tests.support.infra import Databases, Infra

pytestmark = pytest.mark.integration

CUSTOMERS = 1_500
PARTITIONS = 8


def _purchases(seed: int = 4) -> tuple[list[dict[str, Any]], int]:
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    messages: list[dict[str, Any]] = []
    distinct = 0
    for n in range(CUSTOMERS):
        for days in (260, 200):
            amount = f"{rng.randrange(5, 90)}.00"
            event = {
                "event_id": str(uuid.uuid4()),
                "type": "purchase.completed",
                "version": 1,
                "occurred_at": (now - timedelta(days=days)).isoformat(),
                "source": "pos-alerts-scale",
                "customer_id": f"quiet-{n}",
                "data": {
                    "order_id": f"o-{uuid.uuid4().hex[:12]}",
                    "merchant_id": "grocer",
                    "store_id": "store-1",
                    "amount": amount,
                    "currency": "EUR",
                    "items": [
                        {"sku": "s", "category": "food", "quantity": 1, "unit_price": amount}
                    ],
                },
            }
            messages.append(event)
            distinct += 1
            if rng.random() < 0.1:
                messages.append(event)
    return messages, distinct


async def test_three_alerts_instances_raise_one_alert_per_customer_through_a_crash(
    infra: Infra, apache_kafka: str, databases: Databases, unique: str, tmp_path: Path
) -> None:
    db_url = await databases.fresh("alerts")
    names = {
        "ALERTS_CONSUMER_GROUP": f"alerts-scale-{unique}",
        "ALERTS_PURCHASES_TOPIC": f"pos.purchases.{unique}",
        "ALERTS_POINTS_TOPIC": f"loyalty.points.{unique}",
        "ALERTS_REWARDS_TOPIC": f"loyalty.rewards.{unique}",
        "ALERTS_ALERTS_TOPIC": f"loyalty.alerts.{unique}",
    }
    group = names["ALERTS_CONSUMER_GROUP"]
    purchases = names["ALERTS_PURCHASES_TOPIC"]
    await ensure_topics(apache_kafka, [*list(names.values())[1:], f"{group}.dlq"], PARTITIONS)
    env = {
        **names,
        "ALERTS_DATABASE_URL": db_url,
        "KAFKA_BOOTSTRAP_SERVERS": apache_kafka,
        "ALERTS_CLOCK": "wall",
        "ALERTS_SCAN_INTERVAL_SECONDS": "1",
    }
    messages, distinct = _purchases()
    async with running_instances("alerts", env, tmp_path, db_url, apache_kafka) as running:
        instances, engine = running.processes, running.engine
        await wait_for_owners(apache_kafka, group, purchases)
        handled = processed_events(engine)

        async def send(chunk: Sequence[dict[str, Any]]) -> None:
            await send_keyed(running.producer, purchases, chunk)

        await send_through_a_crash_and_a_stop(instances, messages, send, handled)
        await wait_until(at_least(handled, distinct), timeout=300, interval=0.5)

        async def all_alerted() -> object:
            async with engine.connect() as conn:
                done = await conn.scalar(sa.text("SELECT count(DISTINCT customer_id) FROM alerts"))
            return True if done == CUSTOMERS else f"{done}/{CUSTOMERS}"

        await wait_until(all_alerted, timeout=180, interval=0.5)
        await asyncio.sleep(3)  # more scans by the survivor: still one each
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text("SELECT alert_id, customer_id, kind, closed_at FROM alerts")
                )
            ).all()
            dead = await conn.scalar(sa.text("SELECT count(*) FROM dead_letters"))
        assert dead == 0
        # A customer whose first purchase was scanned before the second arrived had an
        # alert closed by that purchase (customer.reactivated) and a new one opened.
        open_alerts = Counter((r.customer_id, r.kind) for r in rows if r.closed_at is None)
        assert len(open_alerts) == CUSTOMERS and set(open_alerts.values()) == {1}, (
            "not exactly one open alert per customer and kind"
        )
        records = await read_topic(apache_kafka, names["ALERTS_ALERTS_TOPIC"], len(rows), 30)
        raised = Counter(
            e.event_id
            for e in (decode_event(r.value) for r in records if r.value is not None)
            if e.type == "alert.raised"
        )
        raised_alerts = {
            str(e.data.alert_id)
            for e in (decode_event(r.value) for r in records if r.value is not None)
            if isinstance(e, AlertRaised)
        }
        assert raised_alerts == {str(r.alert_id) for r in rows}, "an alert raised twice or never"
        assert len(raised) == len(rows)
        assert instances[2].process.poll() is None, instances[2].tail()
