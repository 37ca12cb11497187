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
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.db import create_engine
from tests.integration.scale.support import (
    assert_points_booked_once,
    at_least,
    processed_events,
    send_keyed,
)
from tests.integration.scale.test_points_scale_out import build_stream
from tests.support.counting import wait_until
from tests.support.infra import Databases, free_port
from tests.support.services import start_service, wait_ready
from tooling.devkafka import KafkaCluster, NodeSpec

pytestmark = pytest.mark.integration


async def test_the_leader_of_a_busy_partition_killed_mid_stream_loses_nothing(
    databases: Databases, unique: str, tmp_path: Path
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
        env = {**names, "POINTS_DATABASE_URL": db_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
        service = start_service("points", env, tmp_path)
        await wait_ready(service)

        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=30_000,
        )
        await producer.start()
        try:

            async def send(chunk: list[dict[str, Any]]) -> None:
                await send_keyed(producer, purchases_topic, chunk)

            third = len(messages) // 3
            await send(messages[:third])

            handled = processed_events(engine)
            await wait_until(at_least(handled, third // 3), timeout=120, interval=0.1)
            busiest = TopicPartition(purchases_topic, 0)
            leader = producer.client.cluster.leader_for_partition(busiest)
            assert leader in (1, 2, 3), leader
            cluster.node(leader).kill()  # the leader of a partition being written and read
            await send(messages[third : 2 * third])  # acks=all: 2 in-sync replicas remain
            await asyncio.to_thread(cluster.start_node, leader)
            await send(messages[2 * third :])
        finally:
            await producer.stop()

        await assert_points_booked_once(
            engine, bootstrap, names["POINTS_POINTS_TOPIC"], messages, expected, distinct
        )
    finally:
        if service is not None:
            service.kill()
        await engine.dispose()
        await asyncio.to_thread(cluster.stop)
        shutil.rmtree(root, ignore_errors=True)
