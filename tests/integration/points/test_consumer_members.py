"""Several consumer members of the points group in one process (`POINTS_CONSUMERS`), as the
app builds them: they split the partitions, and every purchase is applied once, replays
included, against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from services.points.app import build_consumers
from services.points.settings import PointsSettings
from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from tests.integration.points.helpers import days_ago, purchase
from tests.support.counting import publish, wait_until
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

PARTITIONS = 4
CUSTOMERS = [f"member-test-{i}" for i in range(16)]


async def test_two_members_split_the_partitions_and_apply_each_purchase_once(
    infra: Infra, points_db: str, unique: str
) -> None:
    settings = PointsSettings(
        database_url=points_db,
        consumers=2,
        consumer_group=f"points-members-{unique}",
        purchases_topic=f"pos.purchases.{unique}",
        rewards_topic=f"loyalty.rewards.{unique}",
        points_topic=f"loyalty.points.{unique}",
    )
    await ensure_topics(
        infra.bootstrap_servers,
        [settings.purchases_topic, settings.rewards_topic, settings.points_topic],
        partitions=PARTITIONS,
    )
    # Per customer (one key, so one partition, in this order): two purchases, both again
    # under the same event ids (a producer's retry), then a third purchase. Once the third
    # is applied, the replays before it on its partition have been consumed too.
    first = [purchase(c, f"{c}-o1", "100.00", days_ago(3)) for c in CUSTOMERS]
    second = [purchase(c, f"{c}-o2", "100.00", days_ago(2)) for c in CUSTOMERS]
    third = [purchase(c, f"{c}-o3", "100.00", days_ago(1)) for c in CUSTOMERS]
    await publish(infra.bootstrap_servers, settings.purchases_topic, [*first, *second])
    await publish(infra.bootstrap_servers, settings.purchases_topic, [*first, *second, *third])

    engine = create_engine(points_db)
    consumers = build_consumers(settings, engine, infra.bootstrap_servers)
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    try:

        async def all_applied() -> object:
            async with engine.connect() as conn:
                orders = await conn.scalar(sa.text("SELECT count(*) FROM order_earnings"))
            for task in tasks:
                if task.done():
                    task.result()  # a member that stopped raises its error here
            return True if orders == 3 * len(CUSTOMERS) else f"{orders} orders recorded"

        await wait_until(all_applied, timeout=60)
        owned = [c.consumer.assignment() for c in consumers]
    finally:
        for consumer in consumers:
            consumer.request_stop()
        await asyncio.gather(*tasks)

    assert all(owned), f"each member owns partitions: {owned}"
    assert not owned[0] & owned[1], "no partition is owned twice"
    purchases = {tp.partition for tp in owned[0] | owned[1] if tp.topic == settings.purchases_topic}
    assert purchases == set(range(PARTITIONS)), "between them, every partition"
    async with engine.connect() as conn:
        rows = await conn.execute(sa.text("SELECT customer_id, lifetime_earned FROM accounts"))
        earned: dict[str, int] = {customer: points for customer, points in rows}
        accruals = await conn.scalar(sa.text("SELECT count(*) FROM ledger WHERE kind = 'accrual'"))
    await engine.dispose()
    assert earned == {c: 300 for c in CUSTOMERS}, "three purchases of 100.00 each, once each"
    assert accruals == 3 * len(CUSTOMERS)
