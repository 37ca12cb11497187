"""Several consumer members of the points group in one process (`POINTS_CONSUMERS`), as the
app builds them: they split the partitions, and every purchase is applied once, replays
included, against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from services.points.app import build_consumers
from services.points.settings import PointsSettings
from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.runtime import EventConsumer
from tests.integration.points.helpers import days_ago, purchase
from tests.support.counting import publish, wait_until
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

PARTITIONS = 4
CUSTOMERS = [f"member-test-{i}" for i in range(16)]


async def test_two_members_split_the_partitions_and_apply_each_purchase_once(
    infra: Infra, points_db: str, unique: str
) -> None:
    settings = await _two_members(infra, points_db, f"members-{unique}", PARTITIONS)
    # Per customer (one key, so one partition, in this order): two purchases, both again
    # under the same event ids (a producer's retry), then a third purchase. Once the third
    # is applied, the replays before it on its partition have been consumed too.
    first = [purchase(c, f"{c}-o1", "100.00", days_ago(3)) for c in CUSTOMERS]
    second = [purchase(c, f"{c}-o2", "100.00", days_ago(2)) for c in CUSTOMERS]
    third = [purchase(c, f"{c}-o3", "100.00", days_ago(1)) for c in CUSTOMERS]
    engine = create_engine(points_db)
    consumers = build_consumers(settings, engine, infra.bootstrap_servers)
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    try:
        # Published once both members are in the group: else the first to join may have
        # applied everything before the second arrives.
        owned = await _each_owning(consumers, settings.purchases_topic)
        await publish(infra.bootstrap_servers, settings.purchases_topic, [*first, *second])
        await publish(infra.bootstrap_servers, settings.purchases_topic, [*first, *second, *third])

        async def all_applied() -> object:
            _raise_if_stopped(tasks)
            async with engine.connect() as conn:
                orders = await conn.scalar(sa.text("SELECT count(*) FROM order_earnings"))
            return True if orders == 3 * len(CUSTOMERS) else f"{orders} orders recorded"

        await wait_until(all_applied, timeout=60)
    finally:
        for consumer in consumers:
            consumer.request_stop()
        await asyncio.gather(*tasks)

    assert not owned[0] & owned[1], "no partition is owned twice"
    assert owned[0] | owned[1] == set(range(PARTITIONS)), "between them, every partition"
    async with engine.connect() as conn:
        rows = await conn.execute(sa.text("SELECT customer_id, lifetime_earned FROM accounts"))
        earned: dict[str, int] = {customer: points for customer, points in rows}
        accruals = await conn.scalar(sa.text("SELECT count(*) FROM ledger WHERE kind = 'accrual'"))
    await engine.dispose()
    assert earned == {c: 300 for c in CUSTOMERS}, "three purchases of 100.00 each, once each"
    assert accruals == 3 * len(CUSTOMERS)


async def test_one_order_sent_to_both_members_at_once_earns_once(
    infra: Infra, points_db: str, unique: str
) -> None:
    """A fraudster's or a confused till's order on two partitions at once, so that each
    member applies it in its own transaction: the customer earns it once, and another
    customer's claim to it is refused (dead-lettered), whatever the members' timing."""
    settings = await _two_members(infra, points_db, f"race-{unique}", 2)
    fillers = [purchase(f"fill-{i}", f"fill-o{i}", "10.00", days_ago(1)) for i in range(400)]
    original = purchase("kim", "o-dup", "50.00", days_ago(1))
    resent = purchase("kim", "o-dup", "50.00", days_ago(1))  # a new event id, same order
    claim = purchase("lee", "o-dup", "50.00", days_ago(1))  # someone else's order
    engine = create_engine(points_db)
    consumers = build_consumers(settings, engine, infra.bootstrap_servers)
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    try:
        await _each_owning(consumers, settings.purchases_topic)
        # Partition 0: half the fillers, the original, then the other customer's claim;
        # partition 1: the other half, then the order resent. Each member has one of them.
        by_partition = {0: [*fillers[::2], original, claim], 1: [*fillers[1::2], resent]}
        producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
        await producer.start()
        try:
            for partition, events in by_partition.items():
                for event in events:
                    value = orjson.dumps(event)
                    key = event["customer_id"].encode()
                    await producer.send(settings.purchases_topic, value, key, partition=partition)
            await producer.flush()
        finally:
            await producer.stop()

        async def settled() -> object:
            _raise_if_stopped(tasks)
            async with engine.connect() as conn:
                orders = await conn.scalar(sa.text("SELECT count(*) FROM order_earnings"))
                refused = await conn.scalar(sa.text("SELECT count(*) FROM dead_letters"))
            done = orders == len(fillers) + 1 and refused == 1
            return True if done else f"{orders} orders, {refused} dead letters"

        await wait_until(settled, timeout=60)
    finally:
        for consumer in consumers:
            consumer.request_stop()
        await asyncio.gather(*tasks)
    async with engine.connect() as conn:
        order = (
            await conn.execute(
                sa.text("SELECT customer_id, points FROM order_earnings WHERE order_id = 'o-dup'")
            )
        ).one()
        kim = await conn.scalar(
            sa.text("SELECT lifetime_earned FROM accounts WHERE customer_id = 'kim'")
        )
        lee = await conn.scalar(
            sa.text("SELECT coalesce(sum(points), 0) FROM ledger WHERE customer_id = 'lee'")
        )
        letter = (
            await conn.execute(sa.text("SELECT error_code, event_id FROM dead_letters"))
        ).one()
    await engine.dispose()
    assert tuple(order) == ("kim", 50) and kim == 50, "the order earned once, for its customer"
    assert lee == 0
    assert letter.error_code == "order_conflict" and str(letter.event_id) == claim["event_id"]


async def _each_owning(consumers: list[EventConsumer], topic: str) -> list[set[int]]:
    """Wait until every member owns partitions of `topic`; the partitions each owns."""

    def owned() -> list[set[int]]:
        return [
            {tp.partition for tp in c.consumer.assignment() if tp.topic == topic} for c in consumers
        ]

    async def each() -> object:
        return True if all(owned()) else owned()

    await wait_until(each, timeout=60)
    return owned()


def _raise_if_stopped(tasks: list[asyncio.Task[None]]) -> None:
    """A member that stopped raises its error here, not as a timeout later."""
    for task in tasks:
        if task.done():
            task.result()


async def _two_members(infra: Infra, db_url: str, tag: str, partitions: int) -> PointsSettings:
    """Settings of a points process with two consumer members, on topics of its own."""
    settings = PointsSettings(
        database_url=db_url,
        consumers=2,
        consumer_group=f"points-{tag}",
        purchases_topic=f"pos.purchases.{tag}",
        rewards_topic=f"loyalty.rewards.{tag}",
        points_topic=f"loyalty.points.{tag}",
    )
    await ensure_topics(
        infra.bootstrap_servers,
        [settings.purchases_topic, settings.rewards_topic, settings.points_topic],
        partitions=partitions,
    )
    return settings
