"""Every recorded purchase is saved and counted, whatever it earned: a 0-point first order
(0.98 EUR earns 0 points, no lot, no ledger line) still raises purchase_count, is announced
as the first purchase exactly once, and settles like any other order."""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa

from services.points.settlement.service import settle_due_orders
from shared.contracts.points import PointsAccrued, PointsSettled
from tests.integration.points.helpers import NOW, days_ago, points_stack, purchase
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration
CUSTOMERS = 450  # more than two consumer batches (200 events each)


async def test_zero_point_first_orders_are_counted_and_announced_once(
    infra: Infra, points_db: str, unique: str
) -> None:
    customers = [f"z-{n:04d}" for n in range(CUSTOMERS)]
    tiny = [purchase(c, f"{c}-tiny", "0.98", days_ago(20)) for c in customers]
    real = [purchase(c, f"{c}-real", "10.00", days_ago(19)) for c in customers]
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.consumer():
            await publish(infra.bootstrap_servers, stack.inbound, tiny)
            await stack.wait_handled(CUSTOMERS)
            await publish(infra.bootstrap_servers, stack.inbound, real)
            await stack.wait_handled(2 * CUSTOMERS)
            settled = await settle_due_orders(stack.engine, NOW, points_topic=stack.outbound)
            assert settled == 2 * CUSTOMERS, "0-point orders settle like any other"
            out = await stack.emitted(4 * CUSTOMERS)
        async with stack.engine.connect() as conn:
            counts: dict[str, int] = dict(
                (
                    await conn.execute(sa.text("SELECT customer_id, purchase_count FROM accounts"))
                ).all()
            )
        short = {c: n for c, n in counts.items() if n != 2}
        assert not short, f"{len(short)} customers' purchase_count is not 2: {list(short)[:5]}"
        accrued = [e for e in out if isinstance(e, PointsAccrued)]
        assert {e.data.points for e in accrued if e.data.order_id.endswith("-tiny")} == {0}
        firsts = Counter(e.customer_id for e in accrued if e.data.first_purchase)
        assert len(firsts) == CUSTOMERS and set(firsts.values()) == {1}, (
            f"first_purchase must be true exactly once per customer; {sum(firsts.values())} "
            f"events said so for {len(firsts)} customers"
        )
        assert {e.data.purchase_count for e in accrued if e.data.order_id.endswith("-real")} == {2}
        settlements = [e for e in out if isinstance(e, PointsSettled)]
        first_settled = Counter(e.customer_id for e in settlements if e.data.first_settled_purchase)
        assert len(first_settled) == CUSTOMERS and set(first_settled.values()) == {1}
        assert {
            e.data.settled_purchase_count for e in settlements if e.data.order_id.endswith("-real")
        } == {2}
