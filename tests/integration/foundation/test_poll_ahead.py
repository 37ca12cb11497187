"""The runtime polls batch N+1 while batch N is applied: a rebalance in between must not
let this member apply the batch it polled ahead for partitions it no longer owns, nor
skip a message of it. Against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from shared.contracts.pos import PurchaseCompleted
from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.handlers import BatchContext, HandlerRegistry
from shared.kafka.runtime import EventConsumer, Polled
from tests.support.counting import _INSERT, applications, prepare, purchase, wait_until
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

PARTITIONS = 3
PER_PARTITION = 40


class _KeepAll(AbstractPartitionAssignor):  # type: ignore[misc]
    """Every partition to one member: the one asking with `TAKE`, else the first."""

    name = "o4-one-member-takes-all"
    version = 0
    user_data = b""

    @classmethod
    def assign(
        cls, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = sorted({topic for m in members.values() for topic in m.subscription})
        partitions = [(t, sorted(cluster.partitions_for_topic(t) or ())) for t in topics]
        takers = [member for member, m in members.items() if m.user_data == _TakeAll.user_data]
        owner = takers[0] if takers else sorted(members)[0]
        return {
            member: ConsumerProtocolMemberAssignment(
                cls.version, partitions if member == owner else [], b""
            )
            for member in members
        }

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(cls.version, list(topics), cls.user_data)

    @classmethod
    def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
        return None


class _TakeAll(_KeepAll):
    user_data = b"take"


class _Watched(EventConsumer):
    """Records every non-empty batch it polled."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.polled: list[Polled] = []

    async def _poll(self, applied: Polled | None) -> Polled:
        polled = await super()._poll(applied)
        if polled.batch:
            self.polled.append(polled)
        return polled


async def test_a_batch_polled_ahead_is_never_applied_after_its_partitions_are_revoked(
    infra: Infra, points_db: str, unique: str
) -> None:
    topic, group = f"ahead.{unique}", f"g-ahead-{unique}"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=PARTITIONS)
    await prepare(points_db)
    events = [purchase(f"c{i}") for i in range(PARTITIONS * PER_PARTITION)]
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        for i, event in enumerate(events):
            await producer.send(topic, orjson.dumps(event), partition=i % PARTITIONS)
        await producer.flush()
    finally:
        await producer.stop()

    release = asyncio.Event()
    revoking = asyncio.Event()  # set when A's revocation begins (it waits for batch 1)
    revoked = asyncio.Event()  # set once it has completed
    calls: dict[str, list[tuple[bool, list[uuid.UUID]]]] = {"A": [], "B": []}

    def registry(member: str) -> HandlerRegistry:
        registry = HandlerRegistry()

        @registry.batch("purchase.completed")
        async def apply(ctx: BatchContext, batch: Sequence[PurchaseCompleted]) -> None:
            calls[member].append((revoked.is_set(), [e.event_id for e in batch]))
            await ctx.conn.execute(
                _INSERT,
                {
                    "ids": [e.event_id for e in batch],
                    "customers": [e.customer_id for e in batch],
                    "amounts": [e.data.amount_minor for e in batch],
                },
            )
            if member == "A" and len(calls["A"]) == 1:
                await release.wait()  # batch 1 stays in flight while A polls batch 2

        return registry

    engine = create_engine(points_db, pool_size=4)

    def member(name: str, assignor: type[_KeepAll]) -> _Watched:
        return _Watched(
            group_id=group,
            topics=[topic],
            bootstrap_servers=infra.bootstrap_servers,
            engine=engine,
            registry=registry(name),
            max_batch=PER_PARTITION,
            consumer_options={"partition_assignment_strategy": (assignor,)},
        )

    a = member("A", _KeepAll)
    revoke = a._listener.on_partitions_revoked

    async def revoke_and_mark(partitions: Any) -> None:
        if partitions:
            revoking.set()
        await revoke(partitions)
        if partitions:
            revoked.set()

    a._listener.on_partitions_revoked = revoke_and_mark  # type: ignore[method-assign,assignment]
    b = member("B", _TakeAll)
    tasks = [asyncio.create_task(a.run())]
    try:
        # A applies batch 1 and, meanwhile, has polled batch 2 ahead.
        await wait_until(lambda: _true(len(calls["A"]) == 1 and len(a.polled) >= 2), timeout=60)
        ahead = {e.event.event_id for e in a.polled[1].items if e.event is not None}
        assert ahead, "A polled nothing ahead: the test would prove nothing"
        # B joins and takes every partition; A's revocation waits for batch 1.
        tasks.append(asyncio.create_task(b.run()))
        await asyncio.wait_for(revoking.wait(), timeout=60)
        assert not revoked.is_set(), "the revocation must wait for the batch in flight"
        release.set()
        expected = {uuid.UUID(e["event_id"]) for e in events}
        await wait_until(lambda: _all_once(points_db, expected), timeout=90)
    finally:
        a.request_stop()
        b.request_stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.dispose()
    assert revoked.is_set(), "A's partitions were never revoked"
    late = [ids for after_revocation, ids in calls["A"] if after_revocation]
    assert not late, f"A applied {sum(map(len, late))} events after losing their partitions"
    by_b = {i for _, ids in calls["B"] for i in ids}
    assert ahead <= by_b, "B must apply the batch A had polled ahead and dropped"


async def _true(value: bool) -> object:
    return value


async def _all_once(db: str, expected: set[uuid.UUID]) -> object:
    counts = await applications(db)
    if set(counts) == expected and all(n == 1 for n in counts.values()):
        return True
    return f"{len(set(counts) & expected)}/{len(expected)} applied, {sum(counts.values())} rows"
