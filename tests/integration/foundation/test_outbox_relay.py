"""The outbox relay publishes record batches per partition: every message lands on the
partition Kafka's default partitioner gives its key, in outbox order per key, with its
headers, whatever the batch boundaries (many small messages, one larger than a batch)."""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from shared.db import create_engine, transaction_driver
from shared.kafka.admin import ensure_topics
from shared.outbox import _COPY_FROM, _TAKE_BATCH, OutboxMessage, OutboxRelay, OutboxWriter
from tests.support.counting import wait_until
from tests.support.dlq import read_topic
from tests.support.infra import Databases, Infra

pytestmark = pytest.mark.integration


def kafka_partition(key: bytes, partitions: int) -> int:
    """The Java client's rule for a keyed record: positive murmur2 modulo partitions."""
    # aiokafka ships no type hints, so murmur2 answers Any; int() states what it returns.
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


async def test_relayed_batches_keep_partitions_order_and_headers(
    infra: Infra, databases: Databases, unique: str
) -> None:
    url = await databases.fresh("points")
    topics = {f"relay-a.{unique}": 4, f"relay-b.{unique}": 3}
    for topic, partitions in topics.items():
        await ensure_topics(infra.bootstrap_servers, [topic], partitions)
    rng = random.Random(5)
    writer = OutboxWriter()
    sent: list[OutboxMessage] = []
    for n in range(3000):
        topic = rng.choice(list(topics))
        key = f"customer-{rng.randrange(40)}".encode()
        size = 200_000 if n == 1500 else rng.randrange(50, 600)  # one above a whole batch
        value = f"{n}:".encode() + b"x" * size
        message = OutboxMessage(topic, key, value, [("n", str(n))] if n % 7 == 0 else [])
        writer.emit_raw(message)
        sent.append(message)
    engine = create_engine(url)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    try:
        async with engine.begin() as conn:
            await writer.flush(conn)
        relay = OutboxRelay(engine, producer, service="relay-test", batch_size=5000)
        assert await relay.relay_once() == len(sent)
        assert await relay.backlog() == 0
    finally:
        await producer.stop()
        await engine.dispose()

    expected: dict[tuple[str, bytes], list[bytes]] = defaultdict(list)
    for message in sent:
        expected[(message.topic, message.key or b"")].append(message.value)
    for topic, partitions in topics.items():
        count = sum(1 for m in sent if m.topic == topic)
        records = await read_topic(infra.bootstrap_servers, topic, expected=count)
        assert len(records) == count, "each row is published once"
        got: dict[tuple[str, bytes], list[bytes]] = defaultdict(list)
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            assert record.key is not None and record.value is not None
            assert record.partition == kafka_partition(record.key, partitions), record.key
            n = int(record.value.split(b":", 1)[0])
            assert list(record.headers) == ([("n", str(n).encode())] if n % 7 == 0 else [])
            got[(topic, record.key)].append(record.value)
        mine = {k: v for k, v in expected.items() if k[0] == topic}
        assert got == mine, "per key, messages arrive in outbox order"


async def test_a_copy_without_headers_stores_and_relays_none(
    infra: Infra, databases: Databases, unique: str
) -> None:
    """A consumer batch's COPY of messages none of which has headers leaves the column to
    its default (an empty list), and the relay publishes them without headers."""
    url = await databases.fresh("points")
    topic = f"relay-bare.{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], 2)
    count = _COPY_FROM + 36  # one COPY
    writer = OutboxWriter()
    for n in range(count):
        writer.emit_raw(OutboxMessage(topic, f"customer-{n % 9}".encode(), str(n).encode()))
    engine = create_engine(url)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    try:
        async with engine.begin() as conn:
            assert await writer.flush(conn) == count
            empty = sa.text("SELECT count(*) FROM outbox WHERE headers = '[]'::jsonb")
            assert await conn.scalar(empty) == count
        assert await OutboxRelay(engine, producer, service="relay-bare").relay_once() == count
    finally:
        await producer.stop()
        await engine.dispose()
    records = await read_topic(infra.bootstrap_servers, topic, expected=count)
    assert sorted(int(r.value or b"") for r in records) == list(range(count))
    assert all(list(r.headers) == [] for r in records)


class _WokenDuringFirstBatch(OutboxRelay):
    """A relay whose first batch overlaps a local commit (the commit sets `wakeup`)."""

    calls = 0

    async def relay_once(self) -> int:
        self.calls += 1
        sent = await super().relay_once()
        if self.calls == 1:
            self.wakeup.set()
        return sent


async def test_the_relay_polls_less_when_idle_but_never_misses_a_wakeup(
    infra: Infra, databases: Databases, unique: str
) -> None:
    """Idle polls back off, so only a wakeup can bring the relay back within this test: one
    set while a batch was being published is kept, and one set later cuts the wait short."""
    url = await databases.fresh("points")
    topic = f"relay-wake.{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], 2)
    engine = create_engine(url)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    relay = _WokenDuringFirstBatch(
        engine, producer, service="relay-wake", idle_interval=600, idle_max=600
    )
    task = asyncio.create_task(relay.run())

    async def polled_again() -> bool:
        return relay.calls >= 2

    async def outbox_empty() -> bool:
        return await relay.backlog() == 0

    try:
        await wait_until(polled_again, timeout=30)
        writer = OutboxWriter()
        writer.emit_raw(OutboxMessage(topic, b"customer-1", b"late"))
        async with engine.begin() as conn:
            await writer.flush(conn)
        relay.wakeup.set()
        await wait_until(outbox_empty, timeout=30)
    finally:
        relay.stop()
        await task
        await producer.stop()
        await engine.dispose()
    records = await read_topic(infra.bootstrap_servers, topic, expected=1)
    assert [r.value for r in records] == [b"late"], "the row written after the wakeup"


# Planner settings under which a join can only be a nested loop that re-runs its inner
# side: the plan a stale plan cache or skewed statistics may give the relay in production.
_NESTED_LOOPS_ONLY = (
    "SET LOCAL enable_hashjoin = off",
    "SET LOCAL enable_mergejoin = off",
    "SET LOCAL enable_hashagg = off",
    "SET LOCAL enable_sort = off",
    "SET LOCAL enable_material = off",
)


def _lock_loops(plan: dict[str, Any]) -> list[int]:
    """How many times each row-locking node of a JSON plan ran."""
    loops = [int(plan["Actual Loops"])] if plan["Node Type"] == "LockRows" else []
    for child in plan.get("Plans", ()):
        loops += _lock_loops(child)
    return loops


async def test_the_relay_picks_its_batch_once_whatever_the_plan(
    databases: Databases, unique: str
) -> None:
    """The relay's statement locks the oldest rows in one scan, whichever join the planner
    picks: a plan that re-ran it for each outbox row made one pass over a 100,000-row
    backlog last minutes."""
    url = await databases.fresh("points")
    writer = OutboxWriter()
    for n in range(3000):
        writer.emit_raw(OutboxMessage(f"relay-plan.{unique}", b"k", str(n).encode()))
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await writer.flush(conn)
        async with engine.connect() as conn:
            driver = await transaction_driver(conn)
            for setting in _NESTED_LOOPS_ONLY:
                await driver.execute(setting)
            explained = await driver.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + _TAKE_BATCH, 100)
            await conn.rollback()
    finally:
        await engine.dispose()
    # The engine's connections decode JSON themselves; a bare driver would hand text.
    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]
    assert plan["Plan"]["Actual Rows"] == 100, "the statement took one batch"
    assert _lock_loops(plan["Plan"]) == [1], "the oldest rows were locked in one scan"
