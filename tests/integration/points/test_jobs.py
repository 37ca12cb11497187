"""Due-time jobs with an injected clock: expiry after a 13-month jump, and tiers that rise
on the qualifying purchase and fall at most one level at the yearly review."""

from __future__ import annotations

import pytest

from services.points.domain.moments import add_months
from services.points.domain.tiers import Tier
from services.points.expiry import expire_due_points, review_due_tiers
from shared.contracts.points import PointsExpired, TierChanged
from tests.integration.points.helpers import credit, days_ago, points_stack, purchase
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


async def test_tier_rises_with_the_qualifying_purchase_and_falls_one_level_at_review(
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
            assert account.tier is Tier.GOLD, "12 purchases of 200.00 reach Gold"
            assert account.lifetime_earned == 6 * 200 + 6 * 250, (
                "purchases 7-12 earn at the Silver multiplier (1.25) reached on purchase 6"
            )
            review_at = add_months(times[-1], 12)
            quiet_year = add_months(days_ago(0), 13)
            reviewed = await review_due_tiers(stack.engine, quiet_year, points_topic=stack.outbound)
            assert reviewed == 1
            out = await stack.emitted(len(sales) + 3)
        changes = [e for e in out if isinstance(e, TierChanged)]
        assert [(e.data.previous_tier, e.data.tier, e.data.reason) for e in changes] == [
            ("member", "silver", "qualified"),
            ("silver", "gold", "qualified"),
            ("gold", "silver", "yearly_review"),
        ], "up on the qualifying purchase, down one level (not to Member) at the review"
        assert changes[0].occurred_at == times[5], "silver on purchase 6"
        assert changes[1].data.qualifying_purchases == 12
        assert changes[2].data.review_at == review_at
        account = await stack.account("ida", quiet_year)
        assert account.tier is Tier.SILVER
