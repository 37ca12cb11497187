"""Faults: PostgreSQL down mid-stream, SIGKILL mid-batch, a member leaving, a relay crash."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from shared.contracts.registry import decode_event
from shared.contracts.topics import dead_letter_topic
from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from shared.outbox import OutboxRelay, OutboxWriter
from tests.support.counting import (
    applications,
    counting_registry,
    prepare,
    publish,
    purchase,
    wait_until,
)
from tests.support.dlq import read_topic
from tests.support.faults import postgres_outage
from tests.support.infra import Databases, Infra
from tests.support.processes import output, start_consumer
from tests.support.running import running_consumer

pytestmark = pytest.mark.integration


def _stream(n: int, customers: int = 50) -> list[dict[str, Any]]:
    return [purchase(f"c{i % customers}", f"{1 + i % 90}.{i % 100:02d}") for i in range(n)]


def _ids(events: list[dict[str, Any]]) -> set[uuid.UUID]:
    return {uuid.UUID(e["event_id"]) for e in events}


def exactly_once(db: str, expected: set[uuid.UUID]) -> Callable[[], Awaitable[object]]:
    async def check() -> object:
        counts = await applications(db)
        missing = len(expected - set(counts))
        doubled = sum(1 for n in counts.values() if n > 1)
        unexpected = len(set(counts) - expected)
        return (missing == doubled == unexpected == 0) or (
            f"missing={missing} doubled={doubled} unexpected={unexpected}"
        )

    return check


async def _applied(db: str) -> int:
    return sum((await applications(db)).values())


async def test_postgres_outage_loses_nothing_doubles_nothing_dead_letters_nothing(
    infra: Infra, points_db: str, unique: str
) -> None:
    """(c)"""
    topic, group = f"c.{unique}", f"g-c-{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic, dead_letter_topic(group)], 4)
    await prepare(points_db)
    first, second = _stream(1500), _stream(1500)
    async with running_consumer(
        infra.bootstrap_servers,
        points_db,
        group,
        [topic],
        counting_registry(delay=0.02),
        max_batch=50,
    ):
        await publish(infra.bootstrap_servers, topic, first)
        await wait_until(lambda: _at_least(points_db, 200))
        await postgres_outage(infra, points_db)
        await publish(infra.bootstrap_servers, topic, second)
        await wait_until(exactly_once(points_db, _ids(first + second)), timeout=120)
    dead = await read_topic(
        infra.bootstrap_servers, dead_letter_topic(group), expected=1, timeout=2
    )
    assert dead == [], "a database outage must never dead-letter an event"


async def _at_least(db: str, n: int) -> object:
    applied = await _applied(db)
    return applied >= n or applied


async def test_consumer_killed_mid_batch_restarts_without_loss_or_double(
    infra: Infra, points_db: str, unique: str
) -> None:
    """(d) SIGKILL while a batch is in flight, then a new process."""
    topic, group = f"d.{unique}", f"g-d-{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], 4)
    await prepare(points_db)
    events = _stream(3000)
    await publish(infra.bootstrap_servers, topic, events)
    victim = start_consumer(infra.bootstrap_servers, points_db, group, topic, delay=0.05)
    try:
        await wait_until(lambda: _at_least(points_db, 300), timeout=60)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        victim_log = output(victim)
    assert await _applied(points_db) < len(events), "the kill must land mid-stream"
    survivor = start_consumer(infra.bootstrap_servers, points_db, group, topic)
    try:
        await wait_until(exactly_once(points_db, _ids(events)), timeout=120)
    except AssertionError:
        raise AssertionError(f"{victim_log}\n---\n{output(survivor)}") from None
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=30) == 0, output(survivor)


async def test_one_of_two_instances_stops_mid_stream(
    infra: Infra, points_db: str, unique: str
) -> None:
    """(e) two members of one group; one leaves (SIGTERM) while events flow."""
    topic, group = f"e.{unique}", f"g-e-{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], 8)
    await prepare(points_db)
    events = _stream(4000, customers=200)
    members = [
        start_consumer(infra.bootstrap_servers, points_db, group, topic, delay=0.02)
        for _ in range(2)
    ]
    try:
        await publish(infra.bootstrap_servers, topic, events[:2000])
        await wait_until(lambda: _at_least(points_db, 500), timeout=60)
        members[0].send_signal(signal.SIGTERM)
        await asyncio.to_thread(members[0].wait, 30)
        assert members[0].returncode == 0, output(members[0])
        await publish(infra.bootstrap_servers, topic, events[2000:])
        await wait_until(exactly_once(points_db, _ids(events)), timeout=120)
    finally:
        logs = [output(m) for m in members]
    assert "consumer stopped" in logs[0], "the stopped member must leave cleanly"


class _KilledAfterPublish(OutboxRelay):
    """Publishes, then dies before marking the rows sent."""

    async def _publish(self, rows: Sequence[Any]) -> None:
        await super()._publish(rows)
        raise RuntimeError("relay killed after publishing, before marking sent")


async def test_relay_crash_after_publish_causes_no_double_effect(
    infra: Infra, databases: Databases, unique: str
) -> None:
    """(f) the upstream outbox re-sends; the downstream consumer applies each event once."""
    upstream, downstream = await databases.fresh("points"), await databases.fresh("rewards")
    topic, group = f"f.{unique}", f"g-f-{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], 4)
    await prepare(downstream)
    events = _stream(300)
    engine = create_engine(upstream)
    writer = OutboxWriter()
    for event in events:
        writer.emit(topic, decode_event(event))
    async with engine.begin() as conn:
        await writer.flush(conn)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    try:
        with pytest.raises(RuntimeError):
            await _KilledAfterPublish(engine, producer, service="up", batch_size=1000).relay_once()
        relay = OutboxRelay(engine, producer, service="up")
        assert await relay.relay_once() == len(events), "unmarked rows must be sent again"
        assert await relay.backlog() == 0
    finally:
        await producer.stop()
        await engine.dispose()
    published = await read_topic(infra.bootstrap_servers, topic, expected=2 * len(events))
    assert len(published) == 2 * len(events), "the crash should have produced duplicates"
    async with running_consumer(
        infra.bootstrap_servers, downstream, group, [topic], counting_registry()
    ):
        await wait_until(exactly_once(downstream, _ids(events)))


@pytest.mark.parametrize("fault", ["fetch task ended", "coordination task ended", "stalled"])
async def test_a_broken_kafka_client_is_replaced(
    infra: Infra, points_db: str, unique: str, fault: str
) -> None:
    """(g) aiokafka runs a consumer's fetching and its group membership in background
    tasks. Once its fetch task has ended, `getmany` returns nothing ever after, without
    raising; once its coordination task has ended, `getmany` raises. A client can also
    stop fetching for reasons no check names (here: its partitions paused, which the
    runtime never does). Each time the runtime replaces the client, and the stream goes
    on: nothing lost, nothing doubled."""
    topic, group = f"g.{unique}", f"g-g-{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic, dead_letter_topic(group)], 4)
    await prepare(points_db)
    first, second = _stream(400), _stream(400)
    async with running_consumer(
        infra.bootstrap_servers,
        points_db,
        group,
        [topic],
        counting_registry(),
        max_batch=50,
        stall_check_seconds=1.0,
    ) as running:
        await publish(infra.bootstrap_servers, topic, first)
        await wait_until(exactly_once(points_db, _ids(first)), timeout=60)
        broken = running.consumer.consumer
        if fault == "fetch task ended":
            broken._fetcher.error_future.cancel()
        elif fault == "coordination task ended":
            broken._coordinator._coordination_task.cancel()
        else:
            broken.pause(*broken.assignment())
        await publish(infra.bootstrap_servers, topic, second)
        await wait_until(exactly_once(points_db, _ids(first) | _ids(second)), timeout=90)
        assert running.consumer.consumer is not broken
        assert running.consumer.rebuilds == 1
