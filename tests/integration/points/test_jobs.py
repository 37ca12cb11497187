"""Due-time jobs with an injected clock: expiry after a 13-month jump, settlement when each
order's return window ends, and tiers that rise when the qualifying purchase settles and
fall at most one level at the yearly review."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.points.domain.moments import add_months
from services.points.domain.tiers import Tier
from services.points.expiry.service import expire_due_points
from services.points.settlement.service import settle_due_orders
from services.points.tiers.service import review_due_tiers
from shared.contracts.points import PointsExpired, PointsSettled, TierChanged
from tests.integration.points.helpers import NOW, credit, days_ago, points_stack, purchase
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


async def test_points_expire_after_a_13_month_clock_jump(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.consumer():
            await publish(
                infra.bootstrap_servers,
                stack.inbound,
                [purchase("hal", "o-1", "100.00", days_ago(1))],
            )
            await publish(
                infra.bootstrap_servers, stack.credits, [credit("hal", "c-1", 30, days_ago(1))]
            )
            await stack.wait_handled(2)
            today = await stack.account("hal")
            assert (today.balance.pending, today.balance.available) == (100, 30)
            later = add_months(days_ago(0), 13)
            before_job = await stack.account("hal", later)
            assert before_job.balance.total == 0, "expired points never show, job or not"
            expired = await expire_due_points(
                stack.engine, later, points_topic=stack.outbound, batch_size=1
            )
            assert expired == 2, "both lots (purchase and credit) expire"
            again = await expire_due_points(stack.engine, later, points_topic=stack.outbound)
            assert again == 0, "a second run finds nothing more to expire"
            out = await stack.emitted(4)
        expiries = [e for e in out if isinstance(e, PointsExpired)]
        assert sorted(e.data.points for e in expiries) == [30, 100]
        assert expiries[-1].data.available == 0 and expiries[-1].data.pending == 0
        account = await stack.account("hal", later)
        assert account.ledger_balance == 0, "the ledger says what the balance says"
        assert account.lifetime_earned == 130, "expiry does not undo what was earned"
        await stack.sound("hal")


async def test_tier_rises_when_the_qualifying_purchase_settles_and_falls_one_level_at_review(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        # Gold needs 12 purchases and 2,000.00 in 12 months; Silver 6 and 500.00.
        times = [days_ago(40 - 3 * n) for n in range(12)]
        sales = [purchase("ida", f"o-{n}", "200.00", at) for n, at in enumerate(times)]
        async with stack.consumer():
            await publish(infra.bootstrap_servers, stack.inbound, sales)
            await stack.wait_handled(len(sales))
            account = await stack.account("ida")
            assert account.tier is Tier.MEMBER, "no purchase counts for tiers before it settles"
            assert account.lifetime_earned == 12 * 200, "all 12 earn at the Member multiplier"
            # Orders 0-8 (40 to 16 days ago) are past their 14-day window today.
            settled = await settle_due_orders(stack.engine, NOW, points_topic=stack.outbound)
            assert settled == 9
            assert (await stack.account("ida")).tier is Tier.SILVER, "6+ settled, 1,800.00"
            later = NOW + timedelta(days=15)
            settled = await settle_due_orders(stack.engine, later, points_topic=stack.outbound)
            assert settled == 3, "the rest settle once their windows end, each once"
            assert await settle_due_orders(stack.engine, later) == 0, "a second run finds none"
            assert (await stack.account("ida", later)).tier is Tier.GOLD
            review_at = add_months(times[-1] + timedelta(days=14), 12)
            quiet_year = add_months(days_ago(0), 13)
            reviewed = await review_due_tiers(stack.engine, quiet_year, points_topic=stack.outbound)
            assert reviewed == 1
            out = await stack.emitted(len(sales) + 12 + 3)
        settlements = [e for e in out if isinstance(e, PointsSettled)]
        assert [e.data.order_id for e in settlements] == [f"o-{n}" for n in range(12)]
        assert [e.data.first_settled_purchase for e in settlements] == [True] + [False] * 11
        assert [e.data.settled_purchase_count for e in settlements] == list(range(1, 13))
        assert settlements[-1].data.settled_lifetime_points == 2400
        changes = [e for e in out if isinstance(e, TierChanged)]
        assert [(e.data.previous_tier, e.data.tier, e.data.reason) for e in changes] == [
            ("member", "silver", "qualified"),
            ("silver", "gold", "qualified"),
            ("gold", "silver", "yearly_review"),
        ], "up when the qualifying purchase settles, down one level (not to Member) at review"
        assert changes[0].occurred_at == times[5] + timedelta(days=14), "silver on settlement 6"
        assert changes[1].data.qualifying_purchases == 12
        assert changes[2].data.review_at == review_at
        account = await stack.account("ida", quiet_year)
        assert account.tier is Tier.SILVER
