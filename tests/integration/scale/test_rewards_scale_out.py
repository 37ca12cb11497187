"""Three rewards instances in one group on Apache Kafka, one crashed and one stopped
mid-stream: compensation exactly once per breach.

6,000 incident messages for the seeded dish-wait policy of `hotel-restaurant` (over 10
minutes is a breach), one order each, bought first on `pos.purchases` (rewards pays on
the order it recorded), 10% re-sent; the breaches and compensations the
database holds at the end are exactly those the test computes.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

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
from tests.support.infra import Databases, Infra

pytestmark = pytest.mark.integration

MESSAGES = 6_000
PARTITIONS = 8


def build_incidents(
    seed: int = 21,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str], int]:
    """(the orders' purchases, incident messages, orders that breached, distinct event ids).

    Rewards pays on the order it recorded from `pos.purchases`, so every incident's order
    is bought first (an incident for an unknown order waits for its purchase).
    """
    rng = random.Random(seed)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    purchases: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    breached: set[str] = set()
    distinct = 0
    while len(messages) < MESSAGES:
        customer = f"guest-{rng.randrange(3_000)}"
        order = f"o-{uuid.uuid4().hex[:12]}"
        minutes = rng.randrange(5, 26)
        purchases.append(
            {
                "event_id": str(uuid.uuid4()),
                "type": "purchase.completed",
                "version": 1,
                "occurred_at": (at - timedelta(minutes=45)).isoformat(),
                "source": "pos-scale-test",
                "customer_id": customer,
                "data": {
                    "order_id": order,
                    "merchant_id": "hotel-restaurant",
                    "store_id": "restaurant",
                    "amount": "40.00",
                    "currency": "EUR",
                },
            }
        )
        event = {
            "event_id": str(uuid.uuid4()),
            "type": "service.incident",
            "version": 1,
            "occurred_at": at.isoformat(),
            "source": "ops-scale-test",
            "customer_id": customer,
            "data": {
                "incident_id": f"inc-{uuid.uuid4().hex[:10]}",
                "merchant_id": "hotel-restaurant",
                "promise_kind": "dish_wait_time",
                "measured": {"value": str(minutes), "unit": "minutes"},
                "order_id": order,
                "order_amount": "40.00",
                "currency": "EUR",
            },
        }
        messages.append(event)
        distinct += 1
        if minutes > 10:
            breached.add(order)
        if rng.random() < 0.1:
            messages.append(event)
    return purchases, messages, breached, distinct


async def test_three_rewards_instances_compensate_each_breach_once_through_a_crash(
    infra: Infra, apache_kafka: str, databases: Databases, unique: str, tmp_path: Path
) -> None:
    db_url = await databases.fresh("rewards")
    names = {
        "REWARDS_CONSUMER_GROUP": f"rewards-scale-{unique}",
        "REWARDS_POINTS_TOPIC": f"loyalty.points.{unique}",
        "REWARDS_INCIDENTS_TOPIC": f"ops.service-incidents.{unique}",
        "REWARDS_REWARDS_TOPIC": f"loyalty.rewards.{unique}",
        "REWARDS_OPS_TOPIC": f"ops.service-incidents.{unique}",
        "REWARDS_PURCHASES_TOPIC": f"pos.purchases.{unique}",
    }
    group = names["REWARDS_CONSUMER_GROUP"]
    incidents = names["REWARDS_INCIDENTS_TOPIC"]
    await ensure_topics(
        apache_kafka,
        [*dict.fromkeys(list(names.values())[1:]), f"{group}.dlq"],
        PARTITIONS,
    )
    env = {**names, "REWARDS_DATABASE_URL": db_url, "KAFKA_BOOTSTRAP_SERVERS": apache_kafka}
    purchases, messages, breached, distinct = build_incidents()
    async with running_instances("rewards", env, tmp_path, db_url, apache_kafka) as running:
        instances, engine = running.processes, running.engine
        await wait_for_owners(apache_kafka, group, incidents)
        handled = processed_events(engine, incidents)
        bought = processed_events(engine, names["REWARDS_PURCHASES_TOPIC"])
        await send_keyed(running.producer, names["REWARDS_PURCHASES_TOPIC"], purchases)
        await wait_until(at_least(bought, len(purchases)), timeout=300, interval=0.5)

        async def send(chunk: Sequence[dict[str, Any]]) -> None:
            await send_keyed(running.producer, incidents, chunk)

        await send_through_a_crash_and_a_stop(instances, messages, send, handled)
        await wait_until(at_least(handled, distinct), timeout=300, interval=0.5)

        async with engine.connect() as conn:
            breaches = {
                row.order_id for row in await conn.execute(sa.text("SELECT order_id FROM breaches"))
            }
            per_breach = Counter(
                row.breach_key
                for row in await conn.execute(sa.text("SELECT breach_key FROM compensations"))
            )
            keys = await conn.scalar(sa.text("SELECT count(*) FROM breaches"))
            dead = await conn.scalar(sa.text("SELECT count(*) FROM dead_letters"))
        assert dead == 0
        assert breaches == breached
        assert len(per_breach) == keys and set(per_breach.values()) == {1}, (
            "a breach was compensated twice or not at all"
        )
        assert instances[2].process.poll() is None, instances[2].tail()
