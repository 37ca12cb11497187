"""Milestones and referrals through Kafka and HTTP on the real broker and PostgreSQL:
every-N-points and tier milestones fire once per customer even when every event is replayed
or re-derived; a referral pays both sides once at the referred customer's first settled
purchase, as the programme configured by an admin says; self, circular, repeated and late
referrals are refused with a problem+json reason."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.rewards.domain.referrals import new_referral_code
from tests.integration.rewards.helpers import (
    RewardsStack,
    accrued,
    days_ago,
    rewards_stack,
    serving,
)
from tests.integration.rewards.points_book import PointsBook
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

MILESTONES = """
INSERT INTO milestone_rules (rule_key, kind, every_points, tier, grant_reward_code, grant_points)
VALUES ('every-1000', 'every_lifetime_points', 1000, NULL, 'free-night', NULL),
       ('gold-welcome', 'tier_reached', NULL, 'gold', NULL, 300)
"""


def _journey(customer: str) -> list[dict[str, Any]]:
    """Settled 400 -> 1,200 (silver) -> 2,100 (gold), down to silver at the yearly review and
    qualifying for gold again."""
    book = PointsBook(customer)
    events = []
    for n, (points, tier) in enumerate([(400, None), (800, "silver"), (900, "gold")]):
        events += [book.buy(f"{customer}-o{n}", points), book.settle(f"{customer}-o{n}")]
        if tier is not None:
            events.append(book.move_tier(tier))
    return [*events, book.move_tier("silver"), book.move_tier("gold")]


async def _milestone_state(stack: RewardsStack) -> list[Any]:
    queries = [
        "SELECT idempotency_key, rule_key, occurrence FROM milestones_reached ORDER BY 1",
        "SELECT voucher_id, origin_ref, reward_code FROM vouchers ORDER BY 1",
    ]
    return [[tuple(r) for r in await stack.rows(q)] for q in queries]


async def test_milestones_fire_once_per_customer_even_on_replay(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await stack.execute(MILESTONES)
        journeys = _journey("mia") + _journey("noa")
        await publish(infra.bootstrap_servers, stack.points_topic, journeys)
        async with stack.consumer():
            await stack.wait_handled(len(journeys))
            await stack.outbox_empty()
        reached = await stack.rows(
            "SELECT customer_id, rule_key, occurrence FROM milestones_reached ORDER BY 1, 2, 3"
        )
        assert [tuple(r) for r in reached] == [
            ("mia", "every-1000", 1),
            ("mia", "every-1000", 2),
            ("mia", "gold-welcome", 1),
            ("noa", "every-1000", 1),
            ("noa", "every-1000", 2),
            ("noa", "gold-welcome", 1),
        ], "2,100 settled points pay 1,000 and 2,000 once; gold reached twice pays once"
        vouchers = await stack.rows(
            "SELECT customer_id, reward_code, origin FROM vouchers ORDER BY 1"
        )
        assert Counter(tuple(v) for v in vouchers) == {
            ("mia", "free-night", "milestone"): 2,
            ("noa", "free-night", "milestone"): 2,
        }
        sent = await stack.emitted(6)
        credits = [e for e in sent if e.type == "points.credit_requested"]
        assert sorted((e.customer_id, e.data.points) for e in credits) == [
            ("mia", 300),
            ("noa", 300),
        ], "the gold welcome perk is credited through the points service, once per customer"
        before, sent_before = await _milestone_state(stack), len(sent)
        # The same events again, and copies re-derived with new ids, read by a new group.
        rederived = _journey("mia")
        await publish(infra.bootstrap_servers, stack.points_topic, journeys + rederived)
        async with stack.consumer(group=f"{stack.group}-replay") as replay:
            await stack.caught_up(replay)
        await stack.outbox_empty()
        assert await _milestone_state(stack) == before, "a replay must not fire a milestone again"
        assert len(await stack.emitted(sent_before)) == sent_before, "a replay emits nothing"


async def _code(client: httpx.AsyncClient, customer: str) -> str:
    response = await client.get(f"/v1/customers/{customer}/referral-code")
    assert response.status_code == 200, response.text
    return str(response.json()["referral_code"])


async def _refer(client: httpx.AsyncClient, customer: str, code: str) -> httpx.Response:
    return await client.post(f"/v1/customers/{customer}/referral", json={"code": code})


def _refused(response: httpx.Response, code: str, status: int = 409) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    assert body.get("field") == "code", f"the problem names the field: {body}"


async def test_referrals_are_recorded_once_and_refused_with_reasons(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await publish(
            infra.bootstrap_servers,
            stack.points_topic,
            [accrued("old", "old-1", days_ago(3), lifetime=5, purchases=1, first=True)],
        )
        async with stack.consumer():
            await stack.wait_handled(1)
        async with serving(stack, infra, workers=False) as client:
            ann = await _code(client, "ann")
            assert await _code(client, "ann") == ann, "the code is stable after the first call"
            bea, cai = await _code(client, "bea"), await _code(client, "cai")
            assert len({ann, bea, cai}) == 3
            recorded = await _refer(client, "bea", ann.lower())  # typed in lower case
            assert recorded.status_code == 201, recorded.text
            assert recorded.json()["referred_by"] == "ann"
            _refused(await _refer(client, "bea", cai), "already_referred")
            _refused(await _refer(client, "ann", bea), "circular_referral")
            assert (await _refer(client, "cai", bea)).status_code == 201  # ann -> bea -> cai
            _refused(await _refer(client, "ann", cai), "circular_referral")
            _refused(await _refer(client, "dov", await _code(client, "dov")), "self_referral")
            _refused(await _refer(client, "old", ann), "not_a_new_customer")
            _refused(await _refer(client, "eli", "not-a-code"), "referral_code_invalid", 422)
            _refused(await _refer(client, "eli", new_referral_code()), "referral_code_unknown", 404)
        links = await stack.rows("SELECT referee_id, referrer_id FROM referrals ORDER BY 1")
        assert [tuple(r) for r in links] == [("bea", "ann"), ("cai", "bea")]


async def test_both_sides_are_rewarded_once_at_the_first_settled_purchase(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        async with serving(stack, infra) as client:
            programme = {
                "referrer": {"reward_code": "friend-dinner"},
                "referee": {"points": 300},
            }
            put = await client.put("/v1/admin/referral-programme", json=programme)
            assert put.status_code == 200, put.text
            definition = {"title": "Dinner for a friend", "valid_days": 60, "merchant_id": "bistro"}
            path = "/v1/admin/reward-definitions/friend-dinner"
            defined = await client.put(path, json=definition)
            assert defined.status_code == 200, defined.text
            code = await _code(client, "fay")
            assert (await _refer(client, "gus", code)).status_code == 201
            gus = PointsBook("gus")
            bought, second = gus.buy("gus-1", 20), gus.buy("gus-2", 20)
            first, later = gus.settle("gus-1"), gus.settle("gus-2")
            events = [bought, second, first, first, later]
            await publish(infra.bootstrap_servers, stack.points_topic, events)
            await stack.wait_handled(4)
            await stack.outbox_empty()
            _refused(await _refer(client, "gus", code), "already_referred")
        rewarded = await stack.scalar(
            "SELECT rewarded_at IS NOT NULL FROM referrals WHERE referee_id = 'gus'"
        )
        assert rewarded, "the referral is marked paid with the first settled purchase"
        vouchers = await stack.rows(
            "SELECT customer_id, reward_code, origin, merchant_id, expires_at - issued_at AS valid"
            " FROM vouchers"
        )
        assert [tuple(v) for v in vouchers] == [
            ("fay", "friend-dinner", "referral", "bistro", timedelta(days=60))
        ], "the referrer's voucher follows the reward definition the admin set"
        sent = await stack.emitted(2)
        credits = [e for e in sent if e.type == "points.credit_requested"]
        assert [(e.customer_id, e.data.points) for e in credits] == [("gus", 300)]
        assert Counter(e.type for e in sent) == {"reward.issued": 1, "points.credit_requested": 1}


async def test_the_programme_is_data_an_admin_changes(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        async with serving(stack, infra, workers=False) as client:
            seeded = (await client.get("/v1/admin/referral-programme")).json()
            assert seeded["referrer"] == {"reward_code": None, "points": 500}
            assert seeded["referee"] == {"reward_code": None, "points": 250}
            both = {"referrer": {"reward_code": "x", "points": 5}, "referee": {"points": 1}}
            bad = await client.put("/v1/admin/referral-programme", json=both)
            assert bad.status_code == 422, bad.text
            off = {"referrer": {"points": 10}, "referee": {"points": 10}, "active": False}
            assert (await client.put("/v1/admin/referral-programme", json=off)).status_code == 200
            assert (await client.get("/v1/admin/referral-programme")).json()["active"] is False
            rewards = (await client.get("/v1/admin/reward-definitions")).json()["rewards"]
            assert [r["reward_code"] for r in rewards] == ["fruit-plate"], "the seeded reward"
