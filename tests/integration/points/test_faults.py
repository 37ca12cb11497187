"""The points consumer itself through a PostgreSQL outage.

The foundation's fault tests run a counting handler; accrual reads and writes through
the driver directly (locks, COPY, the relay's DELETE ... RETURNING), so a connection the
outage broke must still be thrown away, the batch retried, and every purchase accrue
exactly once.
"""

from __future__ import annotations

import pytest

from tests.integration.points.helpers import PointsStack, days_ago, points_stack, purchase
from tests.support.counting import publish, wait_until
from tests.support.dlq import read_topic
from tests.support.faults import postgres_outage
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

CUSTOMERS = 20


async def _count(stack: PointsStack, sql: str) -> int:
    return int(await stack.scalar(sql) or 0)


async def test_a_postgres_outage_mid_stream_accrues_every_purchase_exactly_once(
    infra: Infra, points_db: str, unique: str
) -> None:
    first = [
        purchase(f"p{i % CUSTOMERS}", f"o-{i}", f"{10 + i % 40}.00", days_ago(2))
        for i in range(4000)
    ]
    second = [
        purchase(f"p{i % CUSTOMERS}", f"o-{i}", f"{10 + i % 40}.00", days_ago(1))
        for i in range(4000, 5000)
    ]
    total = len(first) + len(second)
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.consumer():
            await publish(infra.bootstrap_servers, stack.inbound, first)

            async def started() -> object:
                done = await _count(stack, "SELECT count(*) FROM processed_events")
                return 0 < done < len(first) or f"{done} handled"

            await wait_until(started, timeout=60, interval=0.01)
            await postgres_outage(infra, points_db)
            await publish(infra.bootstrap_servers, stack.inbound, second)

            async def caught_up() -> object:
                done = await _count(stack, "SELECT count(*) FROM processed_events")
                return done >= total or f"{done}/{total} handled"

            await wait_until(caught_up, timeout=120)
            accrued = await stack.emitted(total)
        assert await _count(stack, "SELECT count(*) FROM dead_letters") == 0, (
            "an outage must never dead-letter a purchase"
        )
        assert await _count(stack, "SELECT count(*) FROM order_earnings") == total
        assert await _count(stack, "SELECT count(*) FROM ledger WHERE kind = 'accrual'") == total
        counts = await _count(stack, "SELECT sum(purchase_count) FROM accounts")
        assert counts == total, "every purchase counted once on its account"
        assert {e.data.order_id for e in accrued} == {f"o-{i}" for i in range(total)}, (
            "every accrual relayed (at least once)"
        )
        for customer in range(CUSTOMERS):
            await stack.sound(f"p{customer}")
        dead = await read_topic(infra.bootstrap_servers, stack.dlq, expected=1, timeout=2)
        assert dead == []
