"""Section "rewards": service.incident -> compensation.granted, end to end through Kafka.

Publishes breached dish-wait incidents (one order each, the seeded policy: a fruit-plate
voucher; generous caps, so the cap reads run but never hold a grant) once the rewards
consumer has joined its group, paced at a steady 1,000 per second for 30 s (fewer when
`--events` is smaller: one second per 1,000 events), while the consumer and outbox relay
run, and reads the compensation events back. Prints the achieved publish rate, whether
the consumer kept up, and the p50/p95/p99/max latency from each incident's publish to its
compensation event arriving on `loyalty.rewards`, and the consumer's start to first
applied batch (bench.startup). Target (issue 12; reported, never failing): p99 < 1 s,
every incident compensated, at the offered rate.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.foundation import TimedConsumer
from bench.infra import BenchInfra
from bench.report import Progress, target_line
from bench.startup import StartupTimeline
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
RATE = 1_000  # incidents published per second, paced
DURATION = 30.0  # seconds of publishing at RATE (the target's load)
TARGET_P99_MS = 1_000.0
PACE_TOLERANCE = 0.95  # below this share of RATE the publisher, not rewards, fell behind


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


async def _publish(
    producer: AIOKafkaProducer, topic: str, count: int, sent: dict[str, float]
) -> None:
    """Open loop: incident n is due at start + n / RATE, whatever the earlier sends did;
    its publish time is when it was handed to the producer."""
    start = time.perf_counter()
    for n in range(count):
        delay = start + n / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        event = _incident(n, datetime.now(UTC))
        sent[f"o{n}"] = time.perf_counter()
        await producer.send(topic, orjson.dumps(event), key=event["customer_id"].encode())
    await producer.flush()


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


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)] if ordered else math.nan


def summarize(incidents: int, sent: dict[str, float], arrived: dict[str, float]) -> dict[str, Any]:
    """The figures of one paced run, from publish and arrival times (perf_counter)."""
    latencies = sorted((arrived[o] - sent[o]) * 1000 for o in arrived if o in sent)
    first_sent, last_sent = min(sent.values(), default=0.0), max(sent.values(), default=0.0)
    publishing = last_sent - first_sent
    achieved = (len(sent) - 1) / publishing if publishing > 0 else math.nan
    last_arrival = max(arrived.values(), default=math.nan)
    drained = last_arrival - last_sent  # the backlog left when publishing stopped
    compensating = last_arrival - first_sent
    everything = len(arrived) == incidents
    p99 = _percentile(latencies, 0.99)
    paced = achieved >= PACE_TOLERANCE * RATE
    return {
        "incidents": incidents,
        "compensated": len(arrived),
        "publish_rate_rps": RATE,
        "publish_seconds": round(publishing, 2),
        "publish_achieved_rps": round(achieved, 1),
        "throughput_eps": round(len(arrived) / compensating, 1) if compensating > 0 else 0.0,
        "latency_p50_ms": round(_percentile(latencies, 0.50), 1),
        "latency_p95_ms": round(_percentile(latencies, 0.95), 1),
        "latency_p99_ms": round(p99, 1),
        "latency_max_ms": round(latencies[-1], 1) if latencies else math.nan,
        "drained_after_publish_s": round(drained, 3),
        "kept_up": everything and drained < TARGET_P99_MS / 1000,
        "target_compensation_p99_pass": everything and paced and p99 < TARGET_P99_MS,
    }


def report(figures: dict[str, Any], startup: StartupTimeline, describe: str) -> None:
    print(f"\n== rewards: incident -> compensation.granted ({describe})")
    for name, value in figures.items():
        if "startup" not in name:
            print(f"  {name:<28} {value}")
    seconds = figures["incidents"] / RATE
    short = "" if seconds >= DURATION else f" (this run: {seconds:g} s)"
    pace = figures["publish_achieved_rps"]
    print(
        f"publishing achieved {pace:,.0f} incidents/s of {RATE:,} offered; "
        f"the consumer {'kept up' if figures['kept_up'] else 'did NOT keep up'} "
        f"({figures['compensated']:,} of {figures['incidents']:,} compensated, backlog "
        f"drained {figures['drained_after_publish_s']:.2f} s after the last publish)"
    )
    print(
        target_line(
            f"rewards compensation.granted p99 < {TARGET_P99_MS / 1000:g} s at {RATE:,} "
            f"incidents/s for {DURATION:g} s{short}, all compensated",
            f"p50 {figures['latency_p50_ms']:,.0f} ms, p99 {figures['latency_p99_ms']:,.0f} ms, "
            f"max {figures['latency_max_ms']:,.0f} ms",
            figures["target_compensation_p99_pass"],
        )
    )
    print(startup.line("rewards"))


async def run(infra: BenchInfra, count: int) -> dict[str, Any]:
    incidents = max(1, min(count, int(RATE * DURATION)))
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
    consumer = TimedConsumer(
        Progress(incidents),
        infra.broker,
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
            _collect(infra.bootstrap_servers, outbound, incidents, incidents / RATE + 120)
        )
        await _joined(consumer, inbound)
        publisher = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, linger_ms=5)
        await publisher.start()
        try:
            consumer.startup.input_published()
            await _publish(publisher, inbound, incidents, sent)
        finally:
            await publisher.stop()
        arrived = await collecting
    finally:
        consumer.request_stop()
        relay.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
        await engine.dispose()
    figures = summarize(incidents, sent, arrived)
    report(figures, consumer.startup, infra.describe())
    figures.update(consumer.startup.figures("consumer_"))
    return figures
