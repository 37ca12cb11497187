"""Two instances of a service running their periodic work at the same moment apply each
piece of due work once: points expiry (two points processes, jobs every second) and the
alerts scanner (two alerts processes, scans every second), on Apache Kafka.

Every customer made one purchase 15 months ago, so each lot is past its expiry (14 days
pending + 12 months) and each customer is past the 113-day inactivity window.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from shared.contracts.registry import decode_event
from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from tests.support.counting import wait_until
from tests.support.dlq import read_topic
from tests.support.infra import Databases, Infra
from tests.support.services import start_service, wait_ready

pytestmark = pytest.mark.integration

CUSTOMERS = 300


def _purchase(customer: str, at: datetime) -> dict[str, object]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "purchase.completed",
        "version": 1,
        "occurred_at": at.isoformat(),
        "source": "pos-periodic-test",
        "customer_id": customer,
        "data": {
            "order_id": f"o-{uuid.uuid4().hex[:12]}",
            "merchant_id": "grocer",
            "store_id": "store-1",
            "amount": "10.00",
            "currency": "EUR",
            "items": [{"sku": "s", "category": "food", "quantity": 1, "unit_price": "10.00"}],
        },
    }


async def test_expiry_and_lapse_scans_in_two_instances_each_apply_once(
    infra: Infra, apache_kafka: str, databases: Databases, unique: str, tmp_path: Path
) -> None:
    topics = {
        "purchases": f"pos.purchases.{unique}",
        "rewards": f"loyalty.rewards.{unique}",
        "points": f"loyalty.points.{unique}",
        "alerts": f"loyalty.alerts.{unique}",
    }
    points_group, alerts_group = f"points-p-{unique}", f"alerts-p-{unique}"
    await ensure_topics(
        apache_kafka,
        [*topics.values(), f"{points_group}.dlq", f"{alerts_group}.dlq"],
        4,
    )
    points_db = await databases.fresh("points")
    alerts_db = await databases.fresh("alerts")
    common = {"KAFKA_BOOTSTRAP_SERVERS": apache_kafka}
    points_env = {
        **common,
        "POINTS_DATABASE_URL": points_db,
        "POINTS_CONSUMER_GROUP": points_group,
        "POINTS_PURCHASES_TOPIC": topics["purchases"],
        "POINTS_REWARDS_TOPIC": topics["rewards"],
        "POINTS_POINTS_TOPIC": topics["points"],
        "POINTS_JOBS_INTERVAL_SECONDS": "1",
    }
    alerts_env = {
        **common,
        "ALERTS_DATABASE_URL": alerts_db,
        "ALERTS_CONSUMER_GROUP": alerts_group,
        "ALERTS_PURCHASES_TOPIC": topics["purchases"],
        "ALERTS_POINTS_TOPIC": topics["points"],
        "ALERTS_REWARDS_TOPIC": topics["rewards"],
        "ALERTS_ALERTS_TOPIC": topics["alerts"],
        "ALERTS_CLOCK": "wall",
        "ALERTS_SCAN_INTERVAL_SECONDS": "1",
    }
    services = [
        *(start_service("points", points_env, tmp_path, f"points-{i}") for i in range(2)),
        *(start_service("alerts", alerts_env, tmp_path, f"alerts-{i}") for i in range(2)),
    ]
    points_engine = create_engine(points_db, pool_size=2)
    alerts_engine = create_engine(alerts_db, pool_size=2)
    try:
        await asyncio.gather(*(wait_ready(s) for s in services))
        at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=455)
        customers = [f"gone-{n}" for n in range(CUSTOMERS)]
        producer = AIOKafkaProducer(bootstrap_servers=apache_kafka, acks="all", linger_ms=5)
        await producer.start()
        try:
            futures = [
                await producer.send(
                    topics["purchases"], orjson.dumps(_purchase(c, at)), key=c.encode()
                )
                for c in customers
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

        async def expired_all() -> object:
            async with points_engine.connect() as conn:
                done = await conn.scalar(
                    sa.text("SELECT count(DISTINCT customer_id) FROM ledger WHERE kind = 'expiry'")
                )
            return True if done == CUSTOMERS else f"{done}/{CUSTOMERS} expired"

        async def alerted_all() -> object:
            async with alerts_engine.connect() as conn:
                done = await conn.scalar(sa.text("SELECT count(DISTINCT customer_id) FROM alerts"))
            return True if done == CUSTOMERS else f"{done}/{CUSTOMERS} alerted"

        await wait_until(expired_all, timeout=180, interval=0.5)
        await wait_until(alerted_all, timeout=180, interval=0.5)
        # Both instances ran their jobs meanwhile (several rounds each); now count.
        await asyncio.sleep(3)
        for service in services:
            assert service.process.poll() is None, service.tail()
        async with points_engine.connect() as conn:
            expiries = Counter(
                row.customer_id
                for row in await conn.execute(
                    sa.text("SELECT customer_id FROM ledger WHERE kind = 'expiry'")
                )
            )
            balances = {
                row.customer_id: row.ledger_balance
                for row in await conn.execute(
                    sa.text("SELECT customer_id, ledger_balance FROM accounts")
                )
            }
        assert set(expiries.values()) == {1}, "a lot expired twice"
        assert set(balances.values()) == {0}
        async with alerts_engine.connect() as conn:
            per_customer = Counter(
                (row.customer_id, row.kind)
                for row in await conn.execute(sa.text("SELECT customer_id, kind FROM alerts"))
            )
        assert set(per_customer.values()) == {1}, "two alerts for one customer and kind"

        points_out = await read_topic(apache_kafka, topics["points"], CUSTOMERS * 2, 30)
        expired = [decode_event(r.value) for r in points_out if r.value is not None]
        expired = [e for e in expired if e.type == "points.expired"]
        assert Counter(e.customer_id for e in {e.event_id: e for e in expired}.values()) == (
            Counter(customers)
        ), "one points.expired per lot, by distinct event id"
        alerts_out = await read_topic(apache_kafka, topics["alerts"], CUSTOMERS, 30)
        raised = {
            e.event_id: e
            for e in (decode_event(r.value) for r in alerts_out if r.value is not None)
            if e.type == "alert.raised"
        }
        assert Counter(e.customer_id for e in raised.values()) == Counter(customers)
    finally:
        for service in services:
            service.kill()
        await points_engine.dispose()
        await alerts_engine.dispose()
