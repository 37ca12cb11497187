"""processed_events is pruned past the dedupe retention, never inside it: against the real
broker, the real consumer runtime and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy.ext.asyncio import AsyncEngine

from services.rewards.settings import RewardsSettings
from shared.db import create_engine, processed_events
from shared.kafka.admin import ensure_topics
from shared.kafka.dedupe import (
    ProcessedEventsPruner,
    RetentionTooShort,
    pruner_for,
    topic_retentions,
)
from tests.support.counting import (
    applications,
    counting_registry,
    prepare,
    publish,
    purchase,
    wait_until,
)
from tests.support.infra import Infra
from tests.support.running import running_consumer

pytestmark = pytest.mark.integration
RETENTION = timedelta(hours=192)


async def _processed_at(db: str, event_id: str) -> datetime | None:
    engine = create_engine(db, pool_size=1)
    try:
        async with engine.connect() as conn:
            found: datetime | None = await conn.scalar(
                sa.select(processed_events.c.processed_at).where(
                    processed_events.c.event_id == uuid.UUID(event_id)
                )
            )
            return found
    finally:
        await engine.dispose()


async def test_a_replay_inside_the_retention_is_skipped_and_one_after_it_is_applied_again(
    infra: Infra, points_db: str, unique: str
) -> None:
    topic, group = f"dedupe.{unique}", f"g-dedupe-{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=2)
    await prepare(points_db)
    original = purchase("c-1", "12.50")
    engine = create_engine(points_db, pool_size=2)
    now = [datetime.now(UTC)]
    pruner = ProcessedEventsPruner(engine, RETENTION, lambda: now[0], batch=10)
    event_id = uuid.UUID(original["event_id"])

    async def applied(event: dict[str, object], times: int) -> bool:
        return (await applications(points_db)).get(uuid.UUID(str(event["event_id"]))) == times

    try:
        async with running_consumer(
            infra.bootstrap_servers, points_db, group, [topic], counting_registry()
        ):
            await publish(infra.bootstrap_servers, topic, [original])
            await wait_until(lambda: applied(original, 1))
            seen = await _processed_at(points_db, original["event_id"])
            assert seen is not None, "the consumer records the id it applied"

            now[0] = seen + RETENTION - timedelta(seconds=1)  # still inside the window
            await pruner.prune_once()
            assert await _processed_at(points_db, original["event_id"]) == seen
            marker = purchase("c-2", "1.00")
            await publish(infra.bootstrap_servers, topic, [original, marker])
            await wait_until(lambda: applied(marker, 1))
            assert (await applications(points_db))[event_id] == 1, (
                "a replay inside the retention was applied twice"
            )

            now[0] = seen + RETENTION + timedelta(seconds=1)  # past the window
            assert await pruner.prune_once() >= 1
            assert await _processed_at(points_db, original["event_id"]) is None
            late_marker = purchase("c-3", "1.00")
            await publish(infra.bootstrap_servers, topic, [original, late_marker])
            await wait_until(lambda: applied(late_marker, 1))
            # Documented: only a topic kept longer than the retention can deliver this.
            assert (await applications(points_db))[event_id] == 2
    finally:
        await engine.dispose()


async def test_instances_prune_side_by_side_in_batches_each_id_once(points_db: str) -> None:
    now = datetime.now(UTC)
    engine = create_engine(points_db, pool_size=6)
    rows = [
        {
            "event_id": uuid.uuid4(),
            "fingerprint": b"f",
            "topic": "t",
            "partition": 0,
            "offset": i,
            "processed_at": now - RETENTION - timedelta(minutes=i + 1)
            if i < 3000
            else now - RETENTION + timedelta(minutes=i - 2999),
        }
        for i in range(3600)
    ]
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(processed_events), rows)
        pruners = [
            ProcessedEventsPruner(engine, RETENTION, lambda: now, batch=200) for _ in range(3)
        ]
        deleted = await asyncio.gather(*(p.prune_once() for p in pruners))
        assert sum(deleted) == 3000, f"each old id deleted exactly once: {deleted}"
        async with engine.connect() as conn:
            left = await conn.scalar(sa.select(sa.func.count()).select_from(processed_events))
            oldest = await conn.scalar(sa.select(sa.func.min(processed_events.c.processed_at)))
        assert left == 600, "ids inside the retention are kept"
        assert oldest is not None and oldest >= now - RETENTION
        plan = await _plan(engine, now - RETENTION)
        assert "ix_processed_events_processed_at" in plan, plan
    finally:
        await engine.dispose()


async def _plan(engine: AsyncEngine, cutoff: datetime) -> str:
    async with engine.connect() as conn:
        await conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        rows = await conn.execute(
            sa.text(
                "EXPLAIN SELECT event_id FROM processed_events WHERE processed_at < :c "
                "ORDER BY processed_at LIMIT 10"
            ),
            {"c": cutoff},
        )
        return "\n".join(row[0] for row in rows)


async def test_a_retention_shorter_than_a_topics_is_refused(infra: Infra, unique: str) -> None:
    topic = f"long.{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=1,
                    replication_factor=1,
                    topic_configs={"retention.ms": str(30 * 24 * 3600 * 1000)},
                )
            ]
        )
    finally:
        await admin.close()
    known = await topic_retentions(infra.bootstrap_servers, [topic])
    if topic not in known:
        pytest.fail(f"the broker ({infra.mode}) did not report {topic}'s retention: {known}")
    assert known[topic] == timedelta(days=30)
    settings = RewardsSettings(
        database_url="postgresql://unused/db", points_topic=topic, dedupe_retention_hours=192
    )
    engine = create_engine(settings.database_url)
    pruner = pruner_for(engine, settings, infra.bootstrap_servers, lambda: datetime.now(UTC))
    with pytest.raises(RetentionTooShort, match=topic):
        await pruner.run()
    enough = settings.model_copy(update={"dedupe_retention_hours": 24 * 30})
    pruner = pruner_for(engine, enough, infra.bootstrap_servers, lambda: datetime.now(UTC))
    assert pruner._check is not None
    await pruner._check()  # 30 days covers the topic: no refusal
    await engine.dispose()
