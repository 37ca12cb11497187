"""Section "rewards": service.incident -> compensation.granted, end to end through Kafka.

Publishes breached dish-wait incidents (one order each, the seeded policy: a fruit-plate
voucher; generous caps, so the cap reads run but never hold a grant) once the rewards
consumer has joined its group, while the consumer and outbox relay run, and reads the
compensation events back. Prints throughput and the p50/p99 latency from publishing an incident to
its compensation event arriving on `loyalty.rewards`. Figures only; never fails.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.infra import BenchInfra
from services.rewards.handlers import rewards_registry
from services.rewards.settings import RewardsTopics
from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.runtime import EventConsumer
from shared.outbox import OutboxRelay

SECTION = "rewards"
_CAPS = (
    "INSERT INTO merchant_limits (merchant_id, customer_refund_cap_minor, customer_breach_cap,"
    " merchant_monthly_budget_minor) VALUES ('hotel-restaurant', 100000000, 1000, 100000000000)"
)
# The orders the incidents name, as rewards records them from pos.purchases: compensation is
# paid on the recorded amount, so an incident for an unrecorded order would only be held.
_ORDERS = (
    "INSERT INTO orders (order_id, customer_id, merchant_id, amount_minor, currency, ordered_at)"
    " SELECT 'o' || n, 'c' || (n % 997), 'hotel-restaurant', 4000, 'EUR', now()"
    " FROM generate_series(0, :last) AS n"
)
MAX_INCIDENTS = 20_000  # a batch of incidents costs a fixed handful of statements


def _incident(n: int, at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "service.incident",
        "version": 1,
        "occurred_at": at.isoformat(),
        "source": "bench",
        "customer_id": f"c{n % 997}",
        "data": {
            "incident_id": f"i{n}",
            "merchant_id": "hotel-restaurant",
            "promise_kind": "dish_wait_time",
            "measured": {"value": "12", "unit": "minutes"},
            "order_id": f"o{n}",
            "order_amount": "40.00",
            "currency": "EUR",
        },
    }


async def _publish(bootstrap: str, topic: str, count: int, sent: dict[str, float]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for n in range(count):
            event = _incident(n, datetime.now(UTC))
            sent[f"o{n}"] = time.perf_counter()
            await producer.send(topic, orjson.dumps(event), key=event["customer_id"].encode())
            if n % 500 == 0:
                await asyncio.sleep(0)
        await producer.flush()
    finally:
        await producer.stop()


async def _collect(bootstrap: str, topic: str, count: int, patience: float) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    arrived: dict[str, float] = {}
    deadline = time.perf_counter() + patience
    try:
        while len(arrived) < count and time.perf_counter() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = orjson.loads(record.value or b"{}")
                    if event.get("type") == "compensation.granted":
                        arrived[event["data"]["order_id"]] = time.perf_counter()
    finally:
        await consumer.stop()
    return arrived


async def _joined(consumer: EventConsumer, topic: str, patience: float = 60.0) -> None:
    """Wait until the group has handed out `topic`'s partitions: the figures measure the
    pipeline, not the broker's group-join delay (several seconds on Tansu)."""
    deadline = time.perf_counter() + patience
    while time.perf_counter() < deadline:
        if any(tp.topic == topic for tp in consumer.consumer.assignment()):
            return
        await asyncio.sleep(0.05)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)] if ordered else 0.0


async def run(infra: BenchInfra, count: int) -> dict[str, Any]:
    incidents = max(1, min(count, MAX_INCIDENTS))
    tag = uuid.uuid4().hex[:8]
    inbound, outbound, points = f"ops.incidents.{tag}", f"loyalty.rewards.{tag}", f"pts.{tag}"
    await ensure_topics(infra.bootstrap_servers, [inbound, outbound, points], partitions=4)
    engine = create_engine(await infra.fresh_database("rewards"), pool_size=4)
    async with engine.begin() as conn:
        # Generous caps that nobody reaches: every grant still pays for the cap reads.
        await conn.execute(sa.text(_CAPS))
        await conn.execute(sa.text(_ORDERS), {"last": incidents - 1})
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, linger_ms=2)
    await producer.start()
    relay = OutboxRelay(engine, producer, service="rewards-bench")
    consumer = EventConsumer(
        group_id=f"rewards-bench-{tag}",
        topics=[inbound, points],
        bootstrap_servers=infra.bootstrap_servers,
        engine=engine,
        registry=rewards_registry(RewardsTopics(rewards=outbound, ops=inbound)),
        after_commit=relay.wakeup.set,
    )
    tasks = [asyncio.create_task(consumer.run()), asyncio.create_task(relay.run())]
    sent: dict[str, float] = {}
    try:
        collecting = asyncio.create_task(
            _collect(infra.bootstrap_servers, outbound, incidents, 300)
        )
        await _joined(consumer, inbound)
        started = time.perf_counter()
        await _publish(infra.bootstrap_servers, inbound, incidents, sent)
        arrived = await collecting
        elapsed = max(arrived.values(), default=started) - started
    finally:
        consumer.request_stop()
        relay.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
        await engine.dispose()
    latencies = [(arrived[o] - sent[o]) * 1000 for o in arrived if o in sent]
    figures = {
        "incidents": incidents,
        "compensated": len(arrived),
        "throughput_eps": round(len(arrived) / elapsed, 1) if elapsed > 0 else 0.0,
        "latency_p50_ms": round(_percentile(latencies, 0.50), 1),
        "latency_p99_ms": round(_percentile(latencies, 0.99), 1),
    }
    print(f"\n== rewards: incident -> compensation.granted ({infra.describe()})")
    for name, value in figures.items():
        print(f"  {name:<18} {value}")
    return figures
