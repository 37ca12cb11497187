"""Topic administration: create the platform's topics before services start."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


async def ensure_topics(bootstrap_servers: str, topics: Iterable[str], partitions: int = 8) -> None:
    """Create missing topics (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if not missing:
            return
        try:
            await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
            )
        except TopicAlreadyExistsError:
            pass  # another instance created it first
    finally:
        await admin.close()


def ensure_topics_sync(bootstrap_servers: str, topics: Iterable[str], partitions: int = 8) -> None:
    asyncio.run(ensure_topics(bootstrap_servers, topics, partitions))
