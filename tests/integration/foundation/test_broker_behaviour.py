"""What differs between the two embedded brokers, and what the code does about it.

These run on whichever broker the session uses (LOYALTY_BROKER); CI runs them on both.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.runtime import leave_group_in_every_generation
from shared.outbox import OutboxMessage, OutboxRelay, OutboxWriter, is_idempotent, relay_producer
from tests.support.dlq import read_topic
from tests.support.infra import Databases, Infra
from tooling.devinfra import broker_from_environment

pytestmark = pytest.mark.integration


def _embedded_broker(infra: Infra) -> str | None:
    return broker_from_environment() if infra.mode.startswith("embedded") else None


async def test_relay_producer_is_idempotent_exactly_where_the_broker_grants_producer_ids(
    infra: Infra, databases: Databases, unique: str
) -> None:
    """Apache Kafka: an idempotent producer (retried sends never duplicate). Tansu refuses
    InitProducerId, so `auto` falls back to acks=all there and still publishes everything."""
    topic = f"idem.{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], 3)
    producer = await relay_producer(infra.bootstrap_servers, f"relay-{unique}", "auto")
    engine = create_engine(await databases.fresh("points"))
    try:
        broker = _embedded_broker(infra)
        if broker is not None:
            assert is_idempotent(producer) == (broker == "kafka")
        writer = OutboxWriter()
        for n in range(500):
            writer.emit_raw(OutboxMessage(topic, f"c{n % 17}".encode(), f"{n}".encode()))
        async with engine.begin() as conn:
            await writer.flush(conn)
        relay = OutboxRelay(engine, producer, service="idem-test", batch_size=200)
        while await relay.relay_once():
            pass
        assert await relay.backlog() == 0
    finally:
        await producer.stop()
        await engine.dispose()
    records = await read_topic(infra.bootstrap_servers, topic, 500)
    values = sorted(int(r.value) for r in records if r.value is not None)
    assert values == list(range(500))


async def test_a_member_stopped_before_any_rebalance_leaves_the_group_at_once(
    infra: Infra, unique: str
) -> None:
    """Tansu numbers a group's first generation 0, where aiokafka sends no LeaveGroup; the
    runtime sends it anyway. With a 45 s session, the remaining member owning every
    partition within 25 s of the stop proves the leave (a silent member would keep its
    partitions for the whole session)."""
    topic = f"leave.{unique}"
    group = f"leave-{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], 4)
    options = {
        "bootstrap_servers": infra.bootstrap_servers,
        "group_id": group,
        "enable_auto_commit": False,
        "session_timeout_ms": 45_000,
        "heartbeat_interval_ms": 500,
        "rebalance_timeout_ms": 20_000,
    }
    first = AIOKafkaConsumer(topic, **options)
    second = AIOKafkaConsumer(topic, **options)
    # Started together, both join the group's first generation (0 on Tansu, 1 on Kafka).
    await asyncio.gather(first.start(), second.start())
    leave_group_in_every_generation(first)
    leave_group_in_every_generation(second)
    try:
        await _wait_for_split(first, second, 4)
        await first.stop()
        await _wait_for_assignment(second, 4, timeout=25)
        assert second.assignment() == {TopicPartition(topic, p) for p in range(4)}
    finally:
        await second.stop()


async def _wait_for_split(a: AIOKafkaConsumer, b: AIOKafkaConsumer, partitions: int) -> None:
    """Until both own partitions and together all of them (one generation)."""
    async with asyncio.timeout(90):
        while not (
            a.assignment() and b.assignment() and len(a.assignment() | b.assignment()) == partitions
        ):
            await asyncio.gather(a.getmany(timeout_ms=200), b.getmany(timeout_ms=200))


async def _wait_for_assignment(
    consumer: AIOKafkaConsumer, at_least: int, timeout: float = 60
) -> None:
    async with asyncio.timeout(timeout):
        while len(consumer.assignment()) < at_least:
            await consumer.getmany(timeout_ms=200)


async def test_reading_a_whole_topic_gets_the_newest_messages_too(
    infra: Infra, unique: str
) -> None:
    """Tansu answers ListOffsets(latest) below its real end (10,654 for 10,765 written on
    one partition, measured); `loyalty dlq replay` reads the whole topic and must still
    find the newest message."""
    from aiokafka import AIOKafkaProducer

    from tooling.cli_kafka import read_whole_topic

    topic = f"whole.{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], 1)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, b"x" * 100 + str(n).encode(), key=f"k{n}".encode())
            for n in range(10_765)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    messages = await read_whole_topic(infra.bootstrap_servers, topic)
    assert len(messages) == 10_765
    last = messages[-1].value
    assert last is not None and last.endswith(b"10764"), "the last record is the last sent"
