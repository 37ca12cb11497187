"""Returns that name their lines take back what those lines earned, at the prices the
order recorded: a returned gift card (excluded, 0 multiplier) takes back nothing, and no
return, however it is worded, takes back more than an order or a line earned, or less than
the refunded value earned."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.points.domain.earning import EarningRuleSet, ItemScope, exclusion
from services.points.domain.programme import ProgrammeRules
from services.points.rules.repository import RuleRepository
from shared.contracts.points import PointsAccrued
from tests.integration.points.helpers import PointsStack, days_ago, points_stack, purchase, returned
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

GIFT = {"sku": "gift-50", "category": "gift_card", "quantity": 1, "unit_price": "50.00"}
SHIRT = {"sku": "shirt", "category": "clothes", "quantity": 1, "unit_price": "20.00"}


def basket(customer: str, order_id: str, at: Any, shirts: int = 1) -> dict[str, Any]:
    amount = f"{50 + 20 * shirts}.00"
    return purchase(customer, order_id, amount, at, items=[GIFT, {**SHIRT, "quantity": shirts}])


def line(sku: str, quantity: int, unit_price: str | None = None) -> dict[str, Any]:
    named: dict[str, Any] = {"sku": sku, "quantity": quantity}
    if unit_price is not None:
        named["unit_price"] = unit_price
    return named


async def reversed_of(stack: PointsStack, return_id: str) -> int:
    points = await stack.scalar(
        "SELECT points_reversed FROM order_returns WHERE return_id = :r", r=return_id
    )
    assert points is not None, f"return {return_id} was not applied"
    return int(points)


async def test_returned_lines_take_back_what_they_earned(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        at = days_ago(5)
        gift_cards_excluded = EarningRuleSet(
            effective_from=at - timedelta(days=1),
            item_multipliers=(exclusion(ItemScope.CATEGORY, "gift_card"),),
        )
        async with stack.engine.begin() as conn:
            await RuleRepository(conn).add(
                ProgrammeRules(earning=gift_cards_excluded), created_by="test"
            )
        later = at + timedelta(days=1)
        events = [
            basket("amy", "a", at),
            basket("amy", "b", at),
            basket("amy", "c", at, shirts=2),
            basket("amy", "d", at),
            # a: the gift card alone comes back, then "the gift card again" with a made-up price
            returned("amy", "a", "a-1", "50.00", later, items=[line("gift-50", 1)]),
            returned("amy", "a", "a-2", "20.00", later, items=[line("gift-50", 3, "500.00")]),
            # b: the same 50.00 refund without lines: proportional, as before
            returned("amy", "b", "b-1", "50.00", later),
            # c: more shirts than were bought, then one more unit of a line already back
            returned("amy", "c", "c-1", "40.00", later, items=[line("shirt", 5)]),
            returned("amy", "c", "c-2", "20.00", later, items=[line("shirt", 1)]),
            # d: names only the gift card but refunds the whole order
            returned("amy", "d", "d-1", "70.00", later, items=[line("gift-50", 1)]),
        ]
        async with stack.consumer():
            await publish(infra.bootstrap_servers, stack.inbound, events)
            await stack.wait_handled(len(events))
            out = await stack.emitted(4)
        earned = {e.data.order_id: e.data.points for e in out if isinstance(e, PointsAccrued)}
        assert earned == {"a": 20, "b": 20, "c": 40, "d": 20}, "gift cards earn nothing"
        assert await reversed_of(stack, "a-1") == 0, "a returned gift card earned nothing"
        assert await reversed_of(stack, "a-2") == 20, (
            "the gift card was already back: the 20.00 refunded is the shirt's, at the "
            "order's price, whatever price the return claims"
        )
        assert await reversed_of(stack, "b-1") == 14, "without lines: 20 x 50/70"
        assert await reversed_of(stack, "c-1") == 40, "at most the units bought"
        assert await reversed_of(stack, "c-2") == 0, "never more than the order earned"
        assert await reversed_of(stack, "d-1") == 20, (
            "a refund beyond the named lines takes back what the rest of the order earned"
        )
        account = await stack.account("amy")
        assert account.lifetime_earned == 100 - 20 - 14 - 40 - 20
        await stack.sound("amy")
