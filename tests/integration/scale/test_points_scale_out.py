"""Three points instances in one consumer group on Apache Kafka, one crashed and one
stopped mid-stream: every balance still equals what the test computes on its own.

Real processes (`python -m services.points`), one database, an 8-partition purchases
topic. The stream has 30,000 messages: purchases, duplicates of some (the same event
re-sent) and returns of some orders (whole or a quarter). Amounts are whole euros, at
most four purchases of at most 99 euros per customer, so every customer stays Member
(multiplier 1): an order earns its amount in points, a full return takes them all back,
a quarter return takes a quarter (amounts divisible by 4).
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.points.settings import PointsSettings
from shared.kafka.admin import ensure_topics
from tests.integration.scale.support import (
    exactly,
    processed_events,
    running_instances,
    send_keyed,
    send_through_a_crash_and_a_stop,
    wait_for_owners,
)
from tests.support.counting import wait_until
from tests.support.infra import Databases, Infra

pytestmark = pytest.mark.integration

MESSAGES = 30_000
CUSTOMERS = 10_000
PARTITIONS = 8
MEMBERS = PointsSettings.model_fields["consumers"].default  # consumer members per process


def _envelope(kind: str, customer: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": kind,
        "version": 1,
        "occurred_at": at.isoformat(),
        "source": "pos-scale-test",
        "customer_id": customer,
        "data": data,
    }


def build_stream(
    seed: int = 16, size: int = MESSAGES, customers: int = CUSTOMERS
) -> tuple[list[dict[str, Any]], dict[str, int], int]:
    """(messages in send order, expected points per customer, distinct event ids)."""
    rng = random.Random(seed)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    messages: list[dict[str, Any]] = []
    expected: dict[str, int] = defaultdict(int)
    distinct = 0
    while len(messages) < size:
        customer = f"scale-{rng.randrange(customers)}"
        if expected.get(f"#{customer}", 0) >= 4:
            continue
        expected[f"#{customer}"] += 1
        amount = rng.randrange(2, 25) * 4  # 8..96 euros, divisible by 4
        order = f"o-{uuid.uuid4().hex[:12]}"
        bought = _envelope(
            "purchase.completed",
            customer,
            at,
            {
                "order_id": order,
                "merchant_id": "grocer",
                "store_id": "store-1",
                "amount": f"{amount}.00",
                "currency": "EUR",
                "items": [
                    {"sku": "s", "category": "food", "quantity": 1, "unit_price": f"{amount}.00"}
                ],
            },
        )
        messages.append(bought)
        distinct += 1
        expected[customer] += amount
        roll = rng.random()
        if roll < 0.08:
            messages.append(bought)  # the point of sale re-sent it
        elif roll < 0.16:
            whole = rng.random() < 0.5
            refunded = amount if whole else amount // 4
            messages.append(
                _envelope(
                    "purchase.returned",
                    customer,
                    at + timedelta(hours=1),
                    {
                        "return_id": f"r-{uuid.uuid4().hex[:12]}",
                        "order_id": order,
                        "merchant_id": "grocer",
                        "refunded_amount": f"{refunded}.00",
                        "currency": "EUR",
                    },
                )
            )
            distinct += 1
            expected[customer] -= refunded
    points = {k: v for k, v in expected.items() if not k.startswith("#")}
    return messages, points, distinct  # size or size + 1: a return is never cut off


async def test_three_points_instances_survive_a_crash_and_a_stop_with_exact_balances(
    infra: Infra, apache_kafka: str, databases: Databases, unique: str, tmp_path: Path
) -> None:
    db_url = await databases.fresh("points")
    names = {
        "POINTS_CONSUMER_GROUP": f"points-scale-{unique}",
        "POINTS_PURCHASES_TOPIC": f"pos.purchases.{unique}",
        "POINTS_REWARDS_TOPIC": f"loyalty.rewards.{unique}",
        "POINTS_POINTS_TOPIC": f"loyalty.points.{unique}",
    }
    group = names["POINTS_CONSUMER_GROUP"]
    await ensure_topics(apache_kafka, [names["POINTS_PURCHASES_TOPIC"]], PARTITIONS)
    await ensure_topics(
        apache_kafka,
        [names["POINTS_REWARDS_TOPIC"], names["POINTS_POINTS_TOPIC"], f"{group}.dlq"],
        PARTITIONS,
    )
    env = {
        **names,
        "POINTS_DATABASE_URL": db_url,
        "KAFKA_BOOTSTRAP_SERVERS": apache_kafka,
        "POINTS_MAX_BATCH": "500",
        "POINTS_DB_POOL_SIZE": "4",
    }
    messages, expected, distinct = build_stream()
    purchases = names["POINTS_PURCHASES_TOPIC"]
    async with running_instances("points", env, tmp_path, db_url, apache_kafka) as running:
        instances, engine = running.processes, running.engine
        # The group's own assignment: each process's members, each owning purchase partitions.
        await wait_for_owners(
            apache_kafka, group, purchases, members=3 * MEMBERS, partitions=PARTITIONS
        )
        handled = processed_events(engine)

        async def send(chunk: Sequence[dict[str, Any]]) -> None:
            await send_keyed(running.producer, purchases, chunk)

        await send_through_a_crash_and_a_stop(instances, messages, send, handled)
        await wait_until(exactly(handled, distinct), timeout=300, interval=0.5)

        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT customer_id, ledger_balance FROM accounts"))
            balances = {row.customer_id: row.ledger_balance for row in rows}
            dead = await conn.scalar(sa.text("SELECT count(*) FROM dead_letters"))
            out_of_step = await conn.scalar(
                sa.text(
                    "SELECT count(*) FROM accounts AS a LEFT JOIN (SELECT customer_id,"
                    " sum(points) AS total FROM ledger GROUP BY customer_id) AS l"
                    " USING (customer_id) WHERE a.ledger_balance <> coalesce(l.total, 0)"
                )
            )
            lots_mismatch = await conn.scalar(
                sa.text(
                    "SELECT count(*) FROM accounts AS a LEFT JOIN (SELECT customer_id,"
                    " sum(remaining) AS r FROM lots GROUP BY customer_id) AS l"
                    " USING (customer_id) WHERE a.ledger_balance <> coalesce(l.r, 0) - a.debt"
                )
            )
        assert dead == 0, "a valid event was dead-lettered"
        assert out_of_step == 0 and lots_mismatch == 0, "the books do not balance"
        wrong = {c: (balances.get(c), p) for c, p in expected.items() if balances.get(c) != p}
        assert not wrong, f"{len(wrong)} balances differ, e.g. {list(wrong.items())[:5]}"
        assert set(balances) == set(expected)

        # The survivor's members own every partition now.
        await wait_for_owners(
            apache_kafka, group, purchases, members=MEMBERS, partitions=PARTITIONS
        )
        assert instances[2].process.poll() is None, instances[2].tail()
