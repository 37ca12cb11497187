"""Returns reverse points in proportion to the refund, never more than the order earned,
and wait (parked) when they arrive before their purchase."""

from __future__ import annotations

import pytest

from services.points.returns.repository import ReturnRepository
from shared.contracts.points import PointsAccrued, PointsReversed
from tests.integration.points.helpers import days_ago, points_stack, purchase, returned
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


async def test_purchase_then_partial_returns_reverse_proportionally(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        events = [
            purchase("ann", "o-1", "200.00", days_ago(3)),
            returned("ann", "o-1", "r-1", "50.00", days_ago(2)),
            returned("ann", "o-1", "r-2", "30.01", days_ago(1)),
        ]
        async with stack.consumer():
            await publish(infra.bootstrap_servers, stack.inbound, events)
            await stack.wait_handled(3)
            account = await stack.account("ann")
            assert account.balance.pending == 200 - 50 - 30, (
                "200 points minus a quarter (50.00 of 200.00) minus floor(200 x 80.01/200) - 50"
            )
            assert account.balance.available == 0, "points stay pending for 14 days"
            assert account.lifetime_earned == 120, "lifetime points are net of returns"
            # A refund beyond the order amount (goodwill) reverses only what is left.
            await publish(
                infra.bootstrap_servers,
                stack.inbound,
                [returned("ann", "o-1", "r-3", "150.00", days_ago(0.5))],
            )
            await stack.wait_handled(4)
            out = await stack.emitted(4)
        account = await stack.account("ann")
        assert account.balance.pending == 0, "a fully refunded order keeps none of its points"
        assert account.balance.available == 0 and account.balance.debt == 0
        reversed_total = await stack.scalar(
            "SELECT -sum(points) FROM ledger WHERE kind = 'reversal' AND customer_id = 'ann'"
        )
        assert reversed_total == 200, "returns never reverse more than the order earned"
        accrued = out[0]
        assert isinstance(accrued, PointsAccrued) and accrued.data.points == 200
        assert accrued.data.first_purchase and accrued.data.purchase_count == 1
        reversals = [e for e in out if isinstance(e, PointsReversed)]
        assert [e.data.points for e in reversals] == [50, 30, 120], "one reversal per return"
        assert [e.data.pending for e in reversals] == [150, 120, 0], "balances after each return"
        assert reversals[-1].data.purchase_count == 1, "a return keeps the purchase counted"
        await stack.sound("ann")


async def test_return_before_its_purchase_is_parked_then_applied(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.consumer():
            early = returned("bea", "o-7", "r-7", "40.00", days_ago(1))
            await publish(infra.bootstrap_servers, stack.inbound, [early])
            await stack.wait_handled(1)
            async with stack.engine.connect() as conn:
                waiting = await ReturnRepository(conn).unresolved(100)
            assert [(r.return_id, r.status) for r in waiting] == [("r-7", "parked")], (
                "a return for an unseen order must wait, not be dropped"
            )
            assert (await stack.account("bea")).balance.total == 0
            await publish(
                infra.bootstrap_servers,
                stack.inbound,
                [purchase("bea", "o-7", "100.00", days_ago(2))],
            )
            await stack.wait_handled(2)
            out = await stack.emitted(2)
        account = await stack.account("bea")
        assert account.balance.pending == 60, "100 points earned, 40 reversed by the parked return"
        async with stack.engine.connect() as conn:
            assert await ReturnRepository(conn).unresolved(100) == [], (
                "the parked return was applied"
            )
        assert [e.type for e in out] == ["points.accrued", "points.reversed"]
        assert out[1].event_id != early["event_id"]
        await stack.sound("bea")
