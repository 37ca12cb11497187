"""Run a consumer and its outbox relay inside the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from shared.db import create_engine
from shared.kafka.handlers import HandlerRegistry
from shared.kafka.runtime import EventConsumer
from shared.outbox import OutboxRelay


@dataclass
class Running:
    consumer: EventConsumer
    relay: OutboxRelay


@asynccontextmanager
async def running_consumer(
    bootstrap: str,
    db_url: str,
    group: str,
    topics: list[str],
    registry: HandlerRegistry,
    max_batch: int = 500,
    stall_check_seconds: float = 30.0,
) -> AsyncIterator[Running]:
    engine = create_engine(db_url, pool_size=4)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await producer.start()
    relay = OutboxRelay(engine, producer, service=group)
    consumer = EventConsumer(
        group_id=group,
        topics=topics,
        bootstrap_servers=bootstrap,
        engine=engine,
        registry=registry,
        max_batch=max_batch,
        after_commit=relay.wakeup.set,
        consumer_options={"session_timeout_ms": 6000, "heartbeat_interval_ms": 500},
        stall_check_seconds=stall_check_seconds,
    )
    tasks = [asyncio.create_task(consumer.run()), asyncio.create_task(relay.run())]
    try:
        yield Running(consumer, relay)
    finally:
        consumer.request_stop()
        relay.stop()
        await asyncio.gather(*tasks)
        await producer.stop()
        await engine.dispose()
