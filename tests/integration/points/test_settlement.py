"""Settlement through the real consumer, database and job: an order counts for tiers only
once its return window ended, net of its returns, and each order settles exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from services.points.domain.earning import EarningRuleSet
from services.points.domain.programme import ProgrammeRules
from services.points.domain.tiers import Tier
from services.points.rules.repository import RuleRepository
from services.points.settlement.service import settle_due_orders
from shared.contracts.points import PointsAccrued, PointsSettled, TierChanged
from tests.integration.points.helpers import NOW, days_ago, points_stack, purchase, returned
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


async def test_buying_and_returning_inside_the_window_never_raises_the_tier(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        bought = days_ago(25)
        sales = [
            purchase("fox", f"o-{n}", "300.00", bought + timedelta(minutes=n)) for n in range(24)
        ]
        backs = [
            returned("fox", f"o-{n}", f"r-{n}", "300.00", bought + timedelta(days=5, minutes=n))
            for n in range(24)
        ]
        honest = purchase("hen", "h-1", "30.00", bought)
        async with stack.consumer():
            await publish(infra.bootstrap_servers, stack.inbound, [*sales, honest])
            await stack.wait_handled(25)
            assert (await stack.account("fox")).tier is Tier.MEMBER, (
                "24 purchases of 300.00 are not settled yet: no tier before settlement"
            )
            await publish(infra.bootstrap_servers, stack.inbound, backs)
            await stack.wait_handled(49)
            settled = await settle_due_orders(
                stack.engine, NOW, points_topic=stack.outbound, batch_size=7
            )
            assert settled == 25, "every recorded order settles once its window ended"
            again = await settle_due_orders(stack.engine, NOW + timedelta(days=400))
            assert again == 0, "an order settles exactly once"
            out = await stack.emitted(25 + 24 * 2 + 25)
        account = await stack.account("fox")
        assert account.tier is Tier.MEMBER, "bought and returned within the window: stays Member"
        assert account.purchase_count == 24, "the purchases stay recorded as visits"
        fox = [e for e in out if isinstance(e, PointsSettled) and e.customer_id == "fox"]
        assert len(fox) == 24 and all(e.data.fully_returned for e in fox)
        assert {(e.data.points, e.data.amount) for e in fox} == {(0, Decimal("0.00"))}
        assert {e.data.settled_purchase_count for e in fox} == {0}
        assert not any(e.data.first_settled_purchase for e in fox)
        assert not [e for e in out if isinstance(e, TierChanged)], "no tier ever moved"
        (hen,) = [e for e in out if isinstance(e, PointsSettled) and e.customer_id == "hen"]
        assert (hen.data.points, hen.data.amount, hen.data.fully_returned) == (
            30,
            Decimal("30.00"),
            False,
        )
        assert hen.data.first_settled_purchase and hen.data.settled_purchase_count == 1
        assert hen.occurred_at == bought + timedelta(days=14), "judged at its window's end"
        await stack.sound("fox")


async def test_settlement_waits_for_each_merchants_window_and_counts_net_of_returns(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        at = days_ago(10)
        books_window = EarningRuleSet(
            effective_from=at - timedelta(days=1), merchant_return_window_days={"books": 30}
        )
        async with stack.engine.begin() as conn:
            await RuleRepository(conn).add(ProgrammeRules(earning=books_window), created_by="test")
        events = [
            purchase("gus", "g-1", "200.00", at),
            returned("gus", "g-1", "g-r1", "50.00", at + timedelta(days=1)),
            purchase("gus", "g-2", "0.98", at + timedelta(hours=1)),
            purchase("gus", "b-1", "10.00", at, merchant="books"),
        ]
        async with stack.consumer():
            await publish(infra.bootstrap_servers, stack.inbound, events)
            await stack.wait_handled(4)
            assert await settle_due_orders(stack.engine, NOW) == 0, "10 days < 14: nothing due"
            later = at + timedelta(days=14, hours=1)
            settled = await settle_due_orders(stack.engine, later, points_topic=stack.outbound)
            assert settled == 2, "the 0-point order settles too; books' 30-day window runs on"
            # A return after settlement still reverses points, but settled totals stay.
            await publish(
                infra.bootstrap_servers,
                stack.inbound,
                [returned("gus", "g-1", "g-r2", "150.00", later + timedelta(days=1))],
            )
            await stack.wait_handled(5)
            books_end = at + timedelta(days=30)
            assert await settle_due_orders(stack.engine, books_end - timedelta(seconds=1)) == 0
            assert (
                await settle_due_orders(stack.engine, books_end, points_topic=stack.outbound) == 1
            )
            out = await stack.emitted(4 + 2 + 1 + 1)
        settlements = [e for e in out if isinstance(e, PointsSettled)]
        assert [(e.data.order_id, e.data.points, e.data.amount) for e in settlements] == [
            ("g-1", 150, Decimal("150.00")),
            ("g-2", 0, Decimal("0.98")),
            ("b-1", 10, Decimal("10.00")),
        ], "what stayed of each order after its returns (a later return changes no settlement)"
        assert [e.data.first_settled_purchase for e in settlements] == [True, False, False]
        assert settlements[1].data.settled_lifetime_points == 150
        assert settlements[1].data.settled_purchase_count == 2
        assert settlements[2].occurred_at == books_end, "books' own 30-day window"
        assert settlements[2].data.settled_lifetime_points == 160
        accrued = [e for e in out if isinstance(e, PointsAccrued)]
        assert [e.data.first_purchase for e in accrued] == [True, False, False]
        account = await stack.account("gus", later + timedelta(days=2))
        assert account.lifetime_earned == 10, "the late return took back the rest of g-1"
        await stack.sound("gus")


async def test_three_jobs_at_once_settle_each_order_exactly_once(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        sales = [
            purchase(f"c-{n % 40}", f"o-{n}", "12.00", days_ago(20) + timedelta(minutes=n))
            for n in range(300)
        ]
        async with stack.consumer():
            await publish(infra.bootstrap_servers, stack.inbound, sales)
            await stack.wait_handled(len(sales))
        runs = await asyncio.gather(
            *(
                settle_due_orders(stack.engine, NOW, points_topic=stack.outbound, batch_size=25)
                for _ in range(3)
            )
        )
        # An account busy in another job's batch is skipped, so one more run may be needed.
        rest = await settle_due_orders(stack.engine, NOW, points_topic=stack.outbound)
        assert sum(runs) + rest == len(sales), f"settled {runs} + {rest} of {len(sales)}"
        events = await stack.scalar(
            "SELECT count(*) FROM outbox"
            " WHERE convert_from(value, 'UTF8') LIKE '%\"type\":\"points.settled\"%'"
        )
        assert events == len(sales), "each order's points.settled is queued exactly once"
        unsettled = await stack.scalar(
            "SELECT count(*) FROM order_earnings WHERE settled_at IS NULL"
        )
        assert unsettled == 0
        counts = await stack.scalar(
            "SELECT array_agg(DISTINCT settled_purchase_count) FROM accounts"
        )
        assert sorted(counts) == [7, 8], "40 customers: 20 with 8 orders, 20 with 7"
