"""A property over random histories of a referred customer, on the real broker and
PostgreSQL: whatever mix of purchases (`points.accrued`), returns within the window
(`points.reversed`) and settlements (`points.settled`) arrives, with or without re-derived
copies of every event, the milestones reached and the referral reward are exactly what
the settled purchases alone justify."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.rewards.helpers import RewardsStack, rewards_stack, serving
from tests.integration.rewards.points_book import PointsBook
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration
EXAMPLES = 30
RULES = """
INSERT INTO milestone_rules (rule_key, kind, every_points, tier, grant_reward_code, grant_points)
VALUES ('every-1000', 'every_lifetime_points', 1000, NULL, 'free-night', NULL),
       ('every-700', 'every_lifetime_points', 700, NULL, NULL, 50)
"""
T = TypeVar("T")

# One step of the customer's history: buy (points), return part of an order, settle one.
_STEP = st.one_of(
    st.tuples(st.just("buy"), st.integers(min_value=0, max_value=1500)),
    st.tuples(st.just("return"), st.integers(min_value=0, max_value=20), st.floats(0.05, 1.0)),
    st.tuples(st.just("settle"), st.integers(min_value=0, max_value=20)),
)


def _history(book: PointsBook, steps: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The events the points service would publish for `steps` (impossible steps skipped)."""
    events: list[dict[str, Any]] = []
    for step in steps:
        orders = list(book.orders)
        if step[0] == "buy":
            events.append(book.buy(f"{book.customer}-{len(orders)}", step[1]))
            continue
        if not orders:
            continue
        order_id = orders[step[1] % len(orders)]
        order = book.orders[order_id]
        if order.settled:
            continue
        if step[0] == "settle":
            events.append(book.settle(order_id))
        elif order.kept > 0:
            events.append(book.give_back(order_id, max(1, int(order.kept * step[2]))))
    return events


def _justified(book: PointsBook) -> dict[str, Any]:
    """What the settled orders alone pay: every multiple of each rule, and the referral
    once some settled order was not fully returned."""
    settled = [o for o in book.orders.values() if o.settled]
    points = sum(o.kept for o in settled)
    reached = [("every-1000", n) for n in range(1, points // 1000 + 1)]
    reached += [("every-700", n) for n in range(1, points // 700 + 1)]
    return {
        "milestones": sorted(reached),
        "vouchers": points // 1000,
        "referral_rewarded": any(not o.fully_returned for o in settled),
    }


@dataclass
class _World:
    stack: RewardsStack
    infra: Infra
    client: httpx.AsyncClient
    loop: asyncio.AbstractEventLoop
    published: int = 0

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the test's loop (where the consumer runs) from hypothesis's thread."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=120)

    async def refer(self, referee: str) -> None:
        got = await self.client.get("/v1/customers/referrer/referral-code")
        code = got.json()["referral_code"]
        recorded = await self.client.post(f"/v1/customers/{referee}/referral", json={"code": code})
        assert recorded.status_code == 201, recorded.text

    async def play(self, events: list[dict[str, Any]]) -> None:
        await publish(self.infra.bootstrap_servers, self.stack.points_topic, events)
        self.published += len(events)
        await self.stack.wait_handled(self.published)

    async def paid(self, customer: str) -> dict[str, Any]:
        reached = await self.stack.rows(
            "SELECT rule_key, occurrence FROM milestones_reached WHERE customer_id = :c",
            c=customer,
        )
        vouchers = await self.stack.scalar(
            "SELECT count(*) FROM vouchers WHERE customer_id = :c AND origin = 'milestone'",
            c=customer,
        )
        rewarded = await self.stack.scalar(
            "SELECT rewarded_at IS NOT NULL FROM referrals WHERE referee_id = :c", c=customer
        )
        return {
            "milestones": sorted(tuple(r) for r in reached),
            "vouchers": vouchers,
            "referral_rewarded": rewarded,
        }


def _check(world: _World) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(steps=st.lists(_STEP, max_size=14), rederive=st.booleans())
    def history_pays_what_settlement_justifies(
        steps: list[tuple[Any, ...]], rederive: bool
    ) -> None:
        book = PointsBook(f"c-{uuid.uuid4().hex[:12]}")
        events = _history(book, steps)
        if rederive:  # the points service re-deriving every event under a new id
            events += [{**e, "event_id": str(uuid.uuid4())} for e in events]
        world.run(world.refer(book.customer))
        world.run(world.play(events))
        assert world.run(world.paid(book.customer)) == _justified(book), events

    history_pays_what_settlement_justifies()


async def test_milestones_and_referral_equal_what_settled_purchases_justify(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack, serving(stack, infra) as client:
        await stack.execute(RULES)
        world = _World(stack, infra, client, asyncio.get_running_loop())
        await asyncio.to_thread(_check, world)
