"""The merchant's monthly budget, read from the running month totals (rewards_0008), on
the real broker and PostgreSQL: incidents in two batches can never grant more than the
budget, the second batch counting what the first granted; the rest waits for a person."""

from __future__ import annotations

import pytest

from tests.integration.rewards.helpers import RESTAURANT, incident, purchase, rewards_stack
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

BUDGET = 100_00  # minor units: a handful of 20% refunds of 80.00 and their vouchers


async def test_incidents_in_two_batches_never_grant_past_the_merchant_budget(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    customers = [f"mb{n}" for n in range(12)]  # one breach each: no customer cap can hold
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await stack.execute(
            "INSERT INTO merchant_limits (merchant_id, customer_refund_cap_minor,"
            " customer_breach_cap, merchant_monthly_budget_minor) VALUES (:m, :c, 100, :b)",
            m=RESTAURANT,
            c=10**9,
            b=BUDGET,
        )
        await publish(
            infra.bootstrap_servers, stack.purchases, [purchase(c, f"o-{c}") for c in customers]
        )
        async with stack.consumer():
            await stack.wait_handled(12)
            breaches = [incident(c, f"o-{c}", "17", amount="9999.00") for c in customers]
            # the second half reads what the first paid
            await stack.publish_in_batches(stack.incidents, [breaches[:6], breaches[6:]], 12)
            await stack.outbox_empty()
        rows = await stack.rows(
            "SELECT status, review_reasons, refund_minor + voucher_value_minor AS cost"
            " FROM compensations"
        )
        assert len(rows) == 12, "one compensation per breach, none dropped"
        costs = {r.cost for r in rows}
        assert len(costs) == 1, f"every breach is alike, so is its cost: {costs}"
        cost = costs.pop()
        granted = [r for r in rows if r.status == "granted"]
        held = [r for r in rows if r.status != "granted"]
        assert len(granted) == BUDGET // cost, (
            f"{len(granted)} granted at {cost} each against a budget of {BUDGET}: exactly as "
            "many as fit, whatever the incidents state as the order amount"
        )
        assert held and all(
            r.status == "in_review" and list(r.review_reasons) == ["merchant_monthly_budget"]
            for r in held
        ), [(r.status, list(r.review_reasons)) for r in held]
        month = await stack.scalar("SELECT money_minor FROM merchant_month_grants")
        assert month == len(granted) * cost, "the running total is what was granted"
