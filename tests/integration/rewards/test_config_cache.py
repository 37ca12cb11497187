"""The consumer's configuration cache (services.rewards.configuration) is never stale: a
policy, a limit, a reward's validity or a voucher's value changed through the admin API
decides the very next batch of incidents, while unchanged configuration is not read again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.rewards.configuration.service import ConfigCache
from services.rewards.handlers import rewards_registry
from tests.integration.rewards.helpers import (
    NOW,
    RESTAURANT,
    RewardsStack,
    incident,
    purchase,
    rewards_stack,
    serving,
)
from tests.support.counting import publish
from tests.support.infra import Infra
from tests.support.running import running_consumer

pytestmark = pytest.mark.integration

FRUIT_PLATE = {"vouchers": ["fruit-plate"]}


def policy(tier: dict[str, Any]) -> dict[str, Any]:
    """A dish-wait policy with one tier over 10 minutes."""
    return {"unit": "minutes", "tiers": [{"over": 10, **tier}], "claim_window_days": 7}


async def compensated(stack: RewardsStack, order_id: str) -> tuple[Any, ...]:
    row = (
        await stack.rows(
            "SELECT c.status, c.review_reasons, c.vouchers, c.refund_minor, v.expires_at"
            " FROM compensations c LEFT JOIN vouchers v"
            " ON v.origin_ref LIKE 'compensation:' || c.compensation_id || ':%'"
            " WHERE c.order_id = :o",
            o=order_id,
        )
    )[0]
    reasons, vouchers = list(row.review_reasons), list(row.vouchers)
    return row.status, reasons, vouchers, row.refund_minor, row.expires_at


async def test_a_config_change_through_the_api_decides_the_next_batch(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    cache = ConfigCache(lasting=True)
    orders = [f"o-{n}" for n in range(1, 7)]
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await publish(infra.bootstrap_servers, stack.purchases, [purchase("di", o) for o in orders])
        async with (
            serving(stack, infra, workers=False) as admin,
            running_consumer(
                infra.bootstrap_servers,
                stack.db_url,
                stack.group,
                [stack.points_topic, stack.incidents, stack.purchases],
                rewards_registry(stack.topics, config=cache),
            ),
        ):
            await stack.wait_handled(len(orders))
            handled = len(orders)

            async def breached(order_id: str) -> tuple[Any, ...]:
                """One incident, 12 minutes' wait, as a batch of its own."""
                nonlocal handled
                await publish(
                    infra.bootstrap_servers, stack.incidents, [incident("di", order_id, "12")]
                )
                handled += 1
                await stack.wait_handled(handled)
                return await compensated(stack, order_id)

            async def put(path: str, body: dict[str, Any]) -> None:
                response = await admin.put(f"/v1/admin/{path}", json=body)
                assert response.is_success, response.text

            # The seeded configuration: a fruit plate (30 days, worth 8.00) over 10 minutes,
            # the default caps (5 breaches, 100.00 in 30 days).
            month = NOW + timedelta(days=30)
            assert await breached("o-1") == ("granted", [], ["fruit-plate"], 0, month)
            reads = cache.reads
            assert await breached("o-2") == ("granted", [], ["fruit-plate"], 0, month)
            assert cache.reads == reads, "unchanged configuration is served from the cache"

            # A reward definition: its vouchers now last a week.
            definition = {"title": "A fruit plate", "valid_days": 7, "value": "8.00"}
            await put("reward-definitions/fruit-plate", {**definition, "currency": "EUR"})
            week = NOW + timedelta(days=7)
            assert await breached("o-3") == ("granted", [], ["fruit-plate"], 0, week)
            assert cache.reads > reads, "the change emptied the cache"

            # A limit: three breaches in 30 days, so the fourth waits for a person.
            await put(f"limits/{RESTAURANT}", {"customer_breach_cap": 3})
            held = ("in_review", ["customer_breach_cap"], ["fruit-plate"], 0, None)
            assert await breached("o-4") == held

            # A policy: half the order back instead of a fruit plate (the cap lifted again).
            await put(f"limits/{RESTAURANT}", {"customer_breach_cap": 100})
            half = policy({"refund_basis_points": 5000})
            await put(f"policies/{RESTAURANT}/dish_wait_time", half)
            assert await breached("o-5") == ("granted", [], [], 40_00, None)

            # A voucher's value: the fruit plate back, now worth more than the 100.00 cap
            # leaves (3 x 8.00 + 40.00 granted), so it waits for a person.
            await put(f"policies/{RESTAURANT}/dish_wait_time", policy(FRUIT_PLATE))
            worth = {**definition, "value": "100.00", "currency": "EUR"}
            await put("reward-definitions/fruit-plate", worth)
            held = ("in_review", ["customer_refund_cap"], ["fruit-plate"], 0, None)
            assert await breached("o-6") == held
