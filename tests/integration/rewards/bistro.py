"""The bistro the guarantee-claim tests attack: its dish-wait policy (fruit plate over 10
minutes, a 20% refund over 15, 200% over 20), a claim body, and the set-up most of them
start from: the policy stored and one order bought and recorded."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.rewards.helpers import RewardsStack, purchase
from tests.support.counting import publish
from tests.support.infra import Infra

BISTRO = "m-bistro"
DISH_WAIT = {
    "unit": "minutes",
    "tiers": [
        {"over": 10, "vouchers": ["fruit-plate"]},
        {"over": 15, "refund_basis_points": 2000},
        {"over": 20, "refund_basis_points": 20000},
    ],
}


def claim_body(order: str, minutes: Any, merchant: str = BISTRO, **extra: Any) -> dict[str, Any]:
    return {
        "merchant_id": merchant,
        "order_id": order,
        "promise_kind": "dish_wait_time",
        "measured": {"value": minutes, "unit": "minutes"},
        **extra,
    }


async def bistro_order_recorded(
    stack: RewardsStack,
    infra: Infra,
    client: httpx.AsyncClient,
    customer: str,
    order: str,
    amount: str = "100.00",
) -> None:
    """The bistro's dish-wait policy stored, then `order` bought by `customer` and recorded."""
    put = await client.put(f"/v1/admin/policies/{BISTRO}/dish_wait_time", json=DISH_WAIT)
    assert put.status_code == 200, put.text
    await publish(
        infra.bootstrap_servers,
        stack.purchases,
        [purchase(customer, order, amount, merchant=BISTRO)],
    )
    await stack.wait_handled(1)


async def claim_held_for_review(
    client: httpx.AsyncClient, customer: str, order: str, minutes: int = 25
) -> None:
    """The customer's own claim: over 20 minutes it pays tier 1 and holds tiers 2 and 3."""
    claim = await client.post(
        f"/v1/customers/{customer}/guarantee-claims", json=claim_body(order, minutes)
    )
    assert claim.json()["status"] == "in_review", claim.text
