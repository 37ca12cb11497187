"""Return-safe milestones and referral rewards on the real broker and PostgreSQL: only a
purchase whose return window has ended (`points.settled`) counts. Buying and returning
within the window earns no milestone and no referral reward, whatever `points.accrued`
said meanwhile; points milestones count `settled_lifetime_points`; a tier milestone fires on
`tier.changed` only; everything still pays once per customer per occurrence, replays and
re-derived copies included."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.integration.rewards.helpers import RewardsStack, rewards_stack, serving
from tests.integration.rewards.points_book import PointsBook
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

MILESTONES = """
INSERT INTO milestone_rules (rule_key, kind, every_points, tier, grant_reward_code, grant_points)
VALUES ('every-1000', 'every_lifetime_points', 1000, NULL, 'free-night', NULL),
       ('gold-welcome', 'tier_reached', NULL, 'gold', NULL, 300)
"""


async def _paid(stack: RewardsStack) -> dict[str, Any]:
    """Everything rewards has paid or promised: milestones, vouchers, referral marks."""
    milestones = await stack.rows(
        "SELECT customer_id, rule_key, occurrence FROM milestones_reached ORDER BY 1, 2, 3"
    )
    vouchers = await stack.rows("SELECT customer_id, reward_code, origin FROM vouchers ORDER BY 1")
    rewarded = await stack.rows(
        "SELECT referee_id FROM referrals WHERE rewarded_at IS NOT NULL ORDER BY 1"
    )
    return {
        "milestones": [tuple(r) for r in milestones],
        "vouchers": [tuple(r) for r in vouchers],
        "referrals_rewarded": [r.referee_id for r in rewarded],
    }


async def _refer(client: httpx.AsyncClient, referee: str, referrer: str) -> None:
    code = (await client.get(f"/v1/customers/{referrer}/referral-code")).json()["referral_code"]
    recorded = await client.post(f"/v1/customers/{referee}/referral", json={"code": code})
    assert recorded.status_code == 201, recorded.text


def _returned_within_window(gus: PointsBook) -> list[dict[str, Any]]:
    """A 2,500-point first purchase (its accrual even shows tier gold), fully returned."""
    gus.tier = "gold"  # a snapshot's tier alone must not fire a tier milestone
    bought = gus.buy("gus-1", 2500)
    gus.tier = "member"
    return [bought, gus.give_back("gus-1", 1500), gus.give_back("gus-1", 1000), gus.settle("gus-1")]


def _kept_purchases(gus: PointsBook) -> list[dict[str, Any]]:
    """1,200 kept (first settled purchase), then 900 of which 400 come back: 1,700 settled,
    while the accruals alone reached 4,600 lifetime points."""
    return [
        gus.buy("gus-2", 1200),
        gus.buy("gus-3", 900),
        gus.settle("gus-2"),
        gus.give_back("gus-3", 400),
        gus.settle("gus-3"),
        gus.move_tier("gold"),
    ]


def _rederived(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "event_id": str(uuid.uuid4())} for e in events]


async def test_only_settled_purchases_earn_milestones_and_the_referral_reward(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await stack.execute(MILESTONES)
        gus = PointsBook("gus")
        async with serving(stack, infra) as client:
            await _refer(client, "gus", "fay")
            returned = _returned_within_window(gus)
            await publish(infra.bootstrap_servers, stack.points_topic, returned)
            await stack.wait_handled(len(returned))
            await stack.outbox_empty()
            assert await _paid(stack) == {
                "milestones": [],
                "vouchers": [],
                "referrals_rewarded": [],
            }, "a purchase returned within its window earns no milestone and no referral reward"
            kept = _kept_purchases(gus)
            await publish(infra.bootstrap_servers, stack.points_topic, kept)
            await stack.wait_handled(len(returned) + len(kept))
            await stack.outbox_empty()
            view = (await client.get("/v1/customers/gus/rewards")).json()["points"]
            assert (view["lifetime_points"], view["settled_points"]) == (1700, 1700), view
        paid = await _paid(stack)
        assert paid == {
            "milestones": [("gus", "every-1000", 1), ("gus", "gold-welcome", 1)],
            "vouchers": [("gus", "free-night", "milestone")],
            "referrals_rewarded": ["gus"],
        }, "1,700 settled points cross 1,000 once; gold reached once; the referral pays once"
        sent = await stack.emitted(4)
        credits = sorted(
            (e.customer_id, e.data.points) for e in sent if e.type == "points.credit_requested"
        )
        assert credits == [("fay", 500), ("gus", 250), ("gus", 300)], (
            "the referral pays both sides (seeded 500/250) and gold pays its 300 once"
        )
        everything = returned + kept
        await publish(
            infra.bootstrap_servers, stack.points_topic, everything + _rederived(everything)
        )
        async with stack.consumer(group=f"{stack.group}-replay") as replay:
            await stack.caught_up(replay)
        await stack.outbox_empty()
        assert await _paid(stack) == paid, "replays and re-derived copies pay nothing again"
        assert len(await stack.emitted(len(sent))) == len(sent), "a replay emits nothing"
        counts = Counter(e.type for e in sent)
        assert counts == {"points.credit_requested": 3, "reward.issued": 1}, counts
