"""Delivery guarantees of the consumer runtime, against a real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from shared.kafka.admin import ensure_topics
from tests.support.counting import (
    amount_minor,
    applications,
    counting_registry,
    prepare,
    publish,
    purchase,
    totals_sum,
    wait_until,
)
from tests.support.infra import Infra
from tests.support.running import running_consumer

pytestmark = pytest.mark.integration


async def _all_applied_once(db: str, expected: set[uuid.UUID]) -> object:
    counts = await applications(db)
    if set(counts) == expected and all(n == 1 for n in counts.values()):
        return True
    doubled = {k: n for k, n in counts.items() if n > 1}
    return f"{len(set(counts) & expected)}/{len(expected)} applied, doubled={len(doubled)}"


async def test_redelivered_events_are_applied_exactly_once(
    infra: Infra, points_db: str, unique: str
) -> None:
    """(a) each event delivered 2-3 times: within a batch, across batches, after a restart."""
    topic, group = f"a.{unique}", f"g-a-{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=4)
    await prepare(points_db)
    events = [purchase(f"c{i % 37}", f"{random.randint(1, 500)}.{i % 100:02d}") for i in range(300)]
    # Within a batch: each event immediately followed by its copy.
    await publish(infra.bootstrap_servers, topic, [e for ev in events for e in (ev, ev)])
    ids = {e["event_id"] for e in events}
    expected = {uuid.UUID(i) for i in ids}
    async with running_consumer(
        infra.bootstrap_servers, points_db, group, [topic], counting_registry(), max_batch=64
    ):
        await wait_until(lambda: _all_applied_once(points_db, expected))
        # Across batches: a third copy of a third of them, long after the first.
        await publish(infra.bootstrap_servers, topic, events[::3])
        await asyncio.sleep(1.0)
    # After a restart: copies published while no consumer runs, then a new consumer.
    await publish(infra.bootstrap_servers, topic, events[1::3])
    marker = purchase("c-marker")
    await publish(infra.bootstrap_servers, topic, [marker])
    expected.add(uuid.UUID(marker["event_id"]))
    async with running_consumer(
        infra.bootstrap_servers, points_db, group, [topic], counting_registry(), max_batch=64
    ):
        await wait_until(lambda: _all_applied_once(points_db, expected))
    assert await _all_applied_once(points_db, expected) is True, "an event was applied twice"
    total = sum(amount_minor(e) for e in events) + amount_minor(marker)
    assert await totals_sum(points_db) == total, "customer totals differ from the events' sum"
