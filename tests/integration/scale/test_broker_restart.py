"""A single Apache Kafka broker killed and restarted mid-stream, its data kept: the
points service's consumer and outbox relay resume on their own, nothing is lost and
nothing is applied twice.

The broker is private to this test (it is killed), persisted under the test's folder.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.db import create_engine
from shared.kafka.admin import ensure_topics
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


async def test_a_broker_restarted_mid_stream_loses_nothing(
    databases: Databases, unique: str, tmp_path: Path
) -> None:
    root = Path(tempfile.mkdtemp(prefix="loyalty-restart-kafka-"))
    cluster = KafkaCluster(root, [NodeSpec(1, free_port(), free_port())])
    bootstrap = cluster.bootstrap_servers
    db_url = await databases.fresh("points")
    names = {
        "POINTS_CONSUMER_GROUP": f"points-restart-{unique}",
        "POINTS_PURCHASES_TOPIC": f"pos.purchases.{unique}",
        "POINTS_REWARDS_TOPIC": f"loyalty.rewards.{unique}",
        "POINTS_POINTS_TOPIC": f"loyalty.points.{unique}",
    }
    group = names["POINTS_CONSUMER_GROUP"]
    engine = create_engine(db_url, pool_size=2)
    service = None
    try:
        cluster.start()
        await ensure_topics(
            bootstrap,
            [*list(names.values())[1:], f"{group}.dlq"],
            4,
        )
        messages, expected, distinct = build_stream(seed=5, size=6_000, customers=2_000)
        env = {**names, "POINTS_DATABASE_URL": db_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
        service = start_service("points", env, tmp_path)
        await wait_ready(service)

        async def send(chunk: list[dict[str, Any]]) -> None:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
            await producer.start()
            try:
                await send_keyed(producer, names["POINTS_PURCHASES_TOPIC"], chunk)
            finally:
                await producer.stop()

        half = len(messages) // 2
        await send(messages[:half])
        await wait_until(at_least(processed_events(engine), half // 3), timeout=120, interval=0.1)
        cluster.nodes[0].kill()  # mid-stream: the service keeps running against nothing
        await asyncio.sleep(3)
        assert service.process.poll() is None, service.tail()
        await asyncio.to_thread(cluster.start_node, 1)
        await send(messages[half:])
        try:
            await assert_points_booked_once(
                engine, bootstrap, names["POINTS_POINTS_TOPIC"], messages, expected, distinct
            )
        except AssertionError as failure:
            async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:
                ready = (await client.get("/readyz")).text
            raise AssertionError(
                f"{failure}\n/readyz: {ready}\n{service.log_after_startup()}"
            ) from failure
    finally:
        if service is not None:
            service.kill()
        await engine.dispose()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
