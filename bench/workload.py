"""A reproducible stream of valid purchase.completed events, pre-produced to a topic."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from shared.contracts.registry import decode_event
from shared.kafka.admin import ensure_topics

CUSTOMERS = 20_000
CATEGORIES = ("food", "drinks", "household", "beauty", "electronics", "clothing")


@dataclass(frozen=True)
class Purchases:
    """The same events as bytes (for the broker) and as columns (for raw inserts)."""

    keys: list[bytes]
    values: list[bytes]
    event_ids: list[uuid.UUID]
    customers: list[str]
    amounts_minor: list[int]

    def __len__(self) -> int:
        return len(self.values)


def _purchase(rng: random.Random, index: int, start: datetime) -> tuple[dict[str, Any], int]:
    customer = f"c-{rng.randrange(CUSTOMERS):06d}"
    items, total = [], 0
    for _ in range(rng.randint(1, 3)):
        unit, quantity = rng.randint(50, 9_999), rng.randint(1, 4)
        total += unit * quantity
        items.append(
            {
                "sku": f"sku-{rng.randrange(5_000)}",
                "category": rng.choice(CATEGORIES),
                "quantity": quantity,
                "unit_price": f"{unit // 100}.{unit % 100:02d}",
            }
        )
    event = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "type": "purchase.completed",
        "version": 1,
        "occurred_at": (start + timedelta(milliseconds=index)).isoformat(),
        "source": "pos-bench",
        "customer_id": customer,
        "data": {
            "order_id": f"o-{index:09d}",
            "merchant_id": f"m-{rng.randrange(50)}",
            "store_id": f"s-{rng.randrange(400)}",
            "amount": f"{total // 100}.{total % 100:02d}",
            "currency": "EUR",
            "items": items,
            "channel": rng.choice(("in_store", "online", "app")),
        },
    }
    return event, total


def make_purchases(count: int, seed: int = 7) -> Purchases:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    keys: list[bytes] = []
    values: list[bytes] = []
    ids: list[uuid.UUID] = []
    customers: list[str] = []
    amounts: list[int] = []
    for index in range(count):
        event, total = _purchase(rng, index, start)
        keys.append(event["customer_id"].encode())
        values.append(orjson.dumps(event))
        ids.append(uuid.UUID(event["event_id"]))
        customers.append(event["customer_id"])
        amounts.append(total)
    for value in values[:100]:  # the contracts must accept what we time
        decode_event(value)
    return Purchases(keys, values, ids, customers, amounts)


async def produce(bootstrap: str, topic: str, purchases: Purchases, partitions: int) -> int:
    """Create `topic` and write every event to it, keyed by customer; returns how many
    the broker acknowledged (counted from the send futures: Tansu's in-memory storage
    answers ListOffsets(latest) with 1, so end_offsets cannot count a topic)."""
    await ensure_topics(bootstrap, [topic], partitions=partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value=value, key=key)
            for key, value in zip(purchases.keys, purchases.values, strict=True)
        ]
        await producer.flush()
        acked = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return len({(m.partition, m.offset) for m in acked})
