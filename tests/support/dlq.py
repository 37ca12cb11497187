"""Read a dead-letter topic from the start."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord


async def read_topic(
    bootstrap: str, topic: str, expected: int, timeout: float = 30
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message of `topic`, waiting until at least `expected` arrived."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                found.extend(records)
            if len(found) >= expected:
                await asyncio.sleep(0.5)  # and nothing more should follow
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    found.extend(records)
                break
    finally:
        await consumer.stop()
    return found


def headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}
