"""A three-broker KRaft cluster (replication factor 3, min.insync.replicas 2, acks=all):
the leader of a busy partition is SIGKILLed mid-stream and restarted later. Zero events
lost, zero applied twice, every accrual published.

The cluster is private to this test (one of its brokers is killed).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.contracts.registry import decode_event
from shared.db import create_engine
from shared.devkafka import KafkaCluster, NodeSpec
from tests.integration.scale.test_points_scale_out import build_stream
from tests.support.counting import wait_until
from tests.support.dlq import read_topic
from tests.support.infra import free_port
from tests.support.services import start_service, wait_ready

pytestmark = pytest.mark.integration


async def test_the_leader_of_a_busy_partition_killed_mid_stream_loses_nothing(
    databases, unique: str, tmp_path: Path
) -> None:
    root = Path(tempfile.mkdtemp(prefix="loyalty-kraft3-"))
    cluster = KafkaCluster(root, [NodeSpec(n, free_port(), free_port()) for n in (1, 2, 3)])
    bootstrap = cluster.bootstrap_servers
    db_url = await databases.fresh("points")
    names = {
        "POINTS_CONSUMER_GROUP": f"points-kraft-{unique}",
        "POINTS_PURCHASES_TOPIC": f"pos.purchases.{unique}",
        "POINTS_REWARDS_TOPIC": f"loyalty.rewards.{unique}",
        "POINTS_POINTS_TOPIC": f"loyalty.points.{unique}",
    }
    purchases_topic = names["POINTS_PURCHASES_TOPIC"]
    group = names["POINTS_CONSUMER_GROUP"]
    engine = create_engine(db_url, pool_size=2)
    service = None
    try:
        await asyncio.to_thread(cluster.start)
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        topic,
                        num_partitions=4,
                        replication_factor=3,
                        topic_configs={"min.insync.replicas": "2"},
                    )
                    for topic in [*list(names.values())[1:], f"{group}.dlq"]
                ]
            )
        finally:
            await admin.close()
        messages, expected, distinct = build_stream(seed=9, size=6_000, customers=2_000)
        orders = {m["data"]["order_id"] for m in messages if m["type"] == "purchase.completed"}
        env = {**names, "POINTS_DATABASE_URL": db_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
        service = start_service("points", env, tmp_path)
        await wait_ready(service)

        async def handled() -> int:
            async with engine.connect() as conn:
                return int(await conn.scalar(sa.text("SELECT count(*) FROM processed_events")) or 0)

        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=30_000,
        )
        await producer.start()
        try:

            async def send(chunk: list[dict]) -> None:  # type: ignore[type-arg]
                futures = [
                    await producer.send(
                        purchases_topic, orjson.dumps(m), key=m["customer_id"].encode()
                    )
                    for m in chunk
                ]
                await asyncio.gather(*futures)

            third = len(messages) // 3
            await send(messages[:third])

            async def some() -> object:
                count = await handled()
                return True if count >= third // 3 else count

            await wait_until(some, timeout=120, interval=0.1)
            busiest = TopicPartition(purchases_topic, 0)
            leader = producer.client.cluster.leader_for_partition(busiest)
            assert leader in (1, 2, 3), leader
            cluster.node(leader).kill()  # the leader of a partition being written and read
            await send(messages[third : 2 * third])  # acks=all: 2 in-sync replicas remain
            await asyncio.to_thread(cluster.start_node, leader)
            await send(messages[2 * third :])
        finally:
            await producer.stop()

        async def everything() -> object:
            count = await handled()
            return True if count == distinct else f"{count}/{distinct}"

        await wait_until(everything, timeout=300, interval=0.5)

        async def relayed() -> object:
            async with engine.connect() as conn:
                left = int(await conn.scalar(sa.text("SELECT count(*) FROM outbox")) or 0)
            return True if left == 0 else f"{left} outbox rows"

        await wait_until(relayed, timeout=120, interval=0.5)
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT customer_id, ledger_balance FROM accounts"))
            balances = {row.customer_id: row.ledger_balance for row in rows}
            dead = await conn.scalar(sa.text("SELECT count(*) FROM dead_letters"))
        assert dead == 0
        assert balances == expected
        records = await read_topic(bootstrap, names["POINTS_POINTS_TOPIC"], len(orders), 60)
        accrued = [
            event.data.order_id  # type: ignore[attr-defined]
            for event in (decode_event(r.value) for r in records if r.value is not None)
            if event.type == "points.accrued"
        ]
        assert set(accrued) == orders, f"{len(orders - set(accrued))} accruals never published"
    finally:
        if service is not None:
            service.kill()
        await engine.dispose()
        await asyncio.to_thread(cluster.stop)
        shutil.rmtree(root, ignore_errors=True)
