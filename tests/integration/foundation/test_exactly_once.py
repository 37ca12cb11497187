"""Delivery guarantees of the consumer runtime, against a real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence

import pytest

from shared.contracts.pos import PurchaseCompleted
from shared.kafka.admin import ensure_topics
from shared.kafka.handlers import BatchContext, HandlerRegistry
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


async def test_a_batch_of_new_events_around_a_replayed_one_applies_each_new_one_once(
    infra: Infra, points_db: str, unique: str
) -> None:
    """A batch is recorded as processed by one COPY, which a replayed event in it refuses
    part-way: the new events copied before the refusal must not stay recorded, or they
    would pass for replays and never be applied. Ids chosen to sort around the replay."""
    topic, group = f"mix.{unique}", f"g-mix-{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=1)
    await prepare(points_db)
    replayed = purchase("c-mix", "5.00", uuid.UUID(int=(1 << 127) | 1))
    async with running_consumer(
        infra.bootstrap_servers, points_db, group, [topic], counting_registry(), max_batch=64
    ):
        await publish(infra.bootstrap_servers, topic, [replayed])
        first = {uuid.UUID(replayed["event_id"])}
        await wait_until(lambda: _all_applied_once(points_db, first))
    # Published while no consumer runs, so the next one gets all three in one batch.
    before = purchase("c-mix", "7.00", uuid.UUID(int=1))
    after = purchase("c-mix", "9.00", uuid.UUID(int=(1 << 128) - 1))
    await publish(infra.bootstrap_servers, topic, [before, replayed, after])
    expected = first | {uuid.UUID(before["event_id"]), uuid.UUID(after["event_id"])}
    async with running_consumer(
        infra.bootstrap_servers, points_db, group, [topic], counting_registry(), max_batch=64
    ):
        await wait_until(lambda: _all_applied_once(points_db, expected))
    assert await totals_sum(points_db) == sum(amount_minor(e) for e in (replayed, before, after))


async def test_a_batch_rolled_back_after_its_events_were_recorded_applies_them_on_retry(
    infra: Infra, points_db: str, unique: str
) -> None:
    """Recording the batch's events as processed is part of the batch's transaction: a
    handler that fails after it (once) rolls the record back with everything else, so the
    retry applies the events instead of taking them for replays."""
    topic, group = f"retry.{unique}", f"g-retry-{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=1)
    await prepare(points_db)
    counting = counting_registry()
    count = counting.handlers["purchase.completed"]
    failures: list[int] = []
    registry = HandlerRegistry()

    @registry.batch("purchase.completed")
    async def fail_once(ctx: BatchContext, events: Sequence[PurchaseCompleted]) -> None:
        await count(ctx, events)
        if not failures:
            failures.append(len(events))
            raise RuntimeError("the handler fails once, after its writes")

    events = [purchase(f"c{i}", "3.00") for i in range(20)]
    await publish(infra.bootstrap_servers, topic, events)
    expected = {uuid.UUID(e["event_id"]) for e in events}
    async with running_consumer(
        infra.bootstrap_servers, points_db, group, [topic], registry, max_batch=64
    ):
        await wait_until(lambda: _all_applied_once(points_db, expected))
    assert failures, "the handler never failed: nothing was rolled back"
    assert await totals_sum(points_db) == sum(amount_minor(e) for e in events)
