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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from shared.contracts.registry import decode_event
from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from tests.support.counting import wait_until
from tests.support.dlq import read_topic
from tests.support.infra import Infra
from tests.support.services import group_assignment, start_service, wait_ready

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
    infra: Infra, apache_kafka: str, databases, unique: str, tmp_path: Path
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
    instances = [start_service("alerts", env, tmp_path, f"alerts-{i}") for i in range(3)]
    engine = create_engine(db_url, pool_size=2)
    producer = AIOKafkaProducer(bootstrap_servers=apache_kafka, acks="all", linger_ms=5)
    await producer.start()
    try:
        await asyncio.gather(*(wait_ready(i) for i in instances))

        async def three_owners() -> object:
            owners = await group_assignment(apache_kafka, group)
            mine = {m: {p for t, p in o if t == purchases} for m, o in owners.items()}
            return True if len(mine) == 3 and all(mine.values()) else mine

        await wait_until(three_owners, timeout=90, interval=0.5)

        async def handled() -> int:
            async with engine.connect() as conn:
                return int(await conn.scalar(sa.text("SELECT count(*) FROM processed_events")) or 0)

        async def at_least(target: int) -> object:
            count = await handled()
            return True if count >= target else f"{count}/{target}"

        async def send(chunk: list[dict[str, Any]]) -> None:
            futures = [
                await producer.send(purchases, orjson.dumps(m), key=m["customer_id"].encode())
                for m in chunk
            ]
            await asyncio.gather(*futures)

        third = len(messages) // 3
        await send(messages[:third])
        await wait_until(lambda: at_least(third // 2), timeout=120, interval=0.2)
        instances[0].kill()
        await send(messages[third : 2 * third])
        await wait_until(lambda: at_least(third + third // 2), timeout=180, interval=0.2)
        code = await asyncio.to_thread(instances[1].terminate)
        assert code in (0, -15), instances[1].tail()
        await send(messages[2 * third :])
        await wait_until(lambda: at_least(distinct), timeout=300, interval=0.5)

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
            str(e.data.alert_id)  # type: ignore[attr-defined]
            for e in (decode_event(r.value) for r in records if r.value is not None)
            if e.type == "alert.raised"
        }
        assert raised_alerts == {str(r.alert_id) for r in rows}, "an alert raised twice or never"
        assert len(raised) == len(rows)
        assert instances[2].process.poll() is None, instances[2].tail()
    finally:
        await producer.stop()
        for instance in instances:
            instance.kill()
        await engine.dispose()
