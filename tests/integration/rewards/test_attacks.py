"""Attacks on the rewards money paths, on the real broker and PostgreSQL: each test is a
fraudster's move that once paid and now must not."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.rewards.bistro import (
    BISTRO,
    DISH_WAIT,
    bistro_order_recorded,
    claim_body,
    claim_held_for_review,
)
from tests.integration.rewards.helpers import (
    RewardsStack,
    incident,
    purchase,
    returned,
    rewards_stack,
    serving,
)
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


async def _compensations(stack: RewardsStack, order: str) -> list[tuple[Any, ...]]:
    rows = await stack.rows(
        "SELECT tier, status, refund_minor FROM compensations WHERE order_id = :o ORDER BY tier",
        o=order,
    )
    return [(r.tier, r.status, r.refund_minor) for r in rows]


async def test_returning_most_of_the_order_before_an_incident_confirms_a_claim_pays_on_what_stayed(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """A 100.00 order; the customer claims 25 minutes (tier 1 paid, tiers 2 and 3 held,
    computed on 100.00), returns 90.00, then an incident measuring 25 minutes confirms the
    claim. The confirmed tiers must be paid on the 10.00 still paid for (2.00 and 18.00),
    not on the 100.00 the order was when the claim was filed (20.00 and 180.00)."""
    async with rewards_stack(infra, rewards_db, unique) as stack:
        async with serving(stack, infra) as client:
            await bistro_order_recorded(stack, infra, client, "c-ret", "o-ret")
            await claim_held_for_review(client, "c-ret", "o-ret")
            assert await _compensations(stack, "o-ret") == [
                (1, "granted", 0),
                (2, "in_review", 2000),
                (3, "in_review", 18000),
            ], "the held tiers were computed on the 100.00 of the order at the claim"
            await publish(
                infra.bootstrap_servers,
                stack.purchases,
                [returned("c-ret", "o-ret", "90.00", merchant=BISTRO)],
            )
            await stack.wait_handled(2)
            assert await stack.scalar("SELECT returned_minor FROM orders") == 9000
            confirm = incident("c-ret", "o-ret", "25", amount="100.00", merchant=BISTRO)
            await publish(infra.bootstrap_servers, stack.incidents, [confirm])
            await stack.wait_handled(3)
            await stack.outbox_empty()
        assert await _compensations(stack, "o-ret") == [
            (1, "granted", 0),
            (2, "granted", 200),
            (3, "granted", 1800),
        ], "double the 10.00 still paid for in all, never double the 100.00 returned"
        events = await stack.emitted(8)
        refunds = [str(e.data.amount) for e in events if e.type == "refund.instructed"]
        assert refunds == ["2.00", "18.00"], "the refunds the point of sale pays out"


async def test_a_customer_who_already_bought_cannot_be_referred_while_points_lag_behind(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """The customer bought (rewards recorded the order from pos.purchases) but the points
    service's `points.accrued` has not reached rewards yet (lag, or a purchase the points
    service dead-letters). Linking a friend's code now would pay both sides at the
    settlement of an order made before anyone referred the customer: it is refused."""
    async with rewards_stack(infra, rewards_db, unique) as stack:
        async with serving(stack, infra) as client:
            await publish(
                infra.bootstrap_servers, stack.purchases, [purchase("c-old", "o-before", "200.00")]
            )
            await stack.wait_handled(1)
            assert await stack.scalar("SELECT count(*) FROM orders") == 1, "the order is recorded"
            code = (await client.get("/v1/customers/c-friend/referral-code")).json()
            answer = await client.post(
                "/v1/customers/c-old/referral", json={"code": code["referral_code"]}
            )
            assert answer.status_code == 409, answer.text
            assert answer.json()["code"] == "not_a_new_customer"
            assert answer.json()["field"] == "code"
        assert await stack.scalar("SELECT count(*) FROM referrals") == 0


async def test_a_held_part_approved_after_a_return_is_paid_on_what_stayed(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """A 100.00 order; the customer claims 25 minutes (tiers 2 and 3 held, computed on
    100.00), then returns 90.00. A reviewer approving the held parts from the queue must
    not pay 20.00 and 180.00 on an order now worth 10.00: the payment follows the record
    (2.00 and 18.00: double the 10.00 in all)."""
    async with rewards_stack(infra, rewards_db, unique) as stack:
        async with serving(stack, infra) as client:
            await bistro_order_recorded(stack, infra, client, "c-apr", "o-apr")
            await claim_held_for_review(client, "c-apr", "o-apr")
            await publish(
                infra.bootstrap_servers,
                stack.purchases,
                [returned("c-apr", "o-apr", "90.00", merchant=BISTRO)],
            )
            await stack.wait_handled(2)
            assert await stack.scalar("SELECT returned_minor FROM orders") == 9000
            held = await stack.rows(
                "SELECT compensation_id FROM compensations WHERE status = 'in_review' ORDER BY tier"
            )
            assert len(held) == 2
            for row in held:
                approved = await client.post(
                    f"/v1/admin/reviews/{row.compensation_id}/approve", json={"note": "ok"}
                )
                assert approved.status_code == 200, approved.text
            await stack.outbox_empty()
        assert await _compensations(stack, "o-apr") == [
            (1, "granted", 0),
            (2, "granted", 200),
            (3, "granted", 1800),
        ], "double the 10.00 still paid for in all"
        events = await stack.emitted(8)
        refunds = [str(e.data.amount) for e in events if e.type == "refund.instructed"]
        assert refunds == ["2.00", "18.00"], "the refunds the point of sale pays out"


async def test_an_admin_key_bound_to_one_merchant_cannot_pay_out_or_loosen_anothers_rules(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """A hostile partner holds an admin key bound to its own merchant. Rewards' admin
    routes span the whole programme (every merchant's policies, caps, review queue,
    catalogue, referral programme): with that key it could approve another merchant's held
    refund, raise another merchant's (or the default) caps, or rewrite its policy to pay
    100 times the order. Every one is a 403 `merchant_bound_key`, and nothing changes."""
    from shared.auth import create_key

    async with rewards_stack(infra, rewards_db, unique) as stack:
        async with stack.engine.begin() as conn:
            key = await create_key(conn, "hostile-admin", ["admin"], merchant_id="m-hostile")
        hostile = {"Authorization": f"Bearer {key.plaintext}"}
        async with serving(stack, infra) as client:
            await bistro_order_recorded(stack, infra, client, "c-hk", "o-hk")
            await claim_held_for_review(client, "c-hk", "o-hk")
            held = await stack.scalar(
                "SELECT compensation_id FROM compensations WHERE tier = 3 AND status = 'in_review'"
            )
            generous = {
                "unit": "minutes",
                "tiers": [{"over": 1, "refund_basis_points": 1_000_000}],
            }
            attempts = [
                client.post(f"/v1/admin/reviews/{held}/approve", json={}, headers=hostile),
                client.put(
                    f"/v1/admin/limits/{BISTRO}",
                    json={"customer_refund_cap_minor": 10**9},
                    headers=hostile,
                ),
                client.put(
                    "/v1/admin/limits/*", json={"customer_refund_cap_minor": 10**9}, headers=hostile
                ),
                client.put(
                    f"/v1/admin/policies/{BISTRO}/dish_wait_time", json=generous, headers=hostile
                ),
                client.put(
                    "/v1/admin/referral-programme",
                    json={"referrer": {"points": 10**6}, "referee": {"points": 10**6}},
                    headers=hostile,
                ),
            ]
            for attempt in attempts:
                answer = await attempt
                assert answer.status_code == 403, answer.text
                assert answer.headers["content-type"].startswith("application/problem+json")
                assert answer.json()["code"] == "merchant_bound_key", answer.text
            listed = await client.get("/v1/admin/policies")
            assert listed.status_code == 200, "an unbound admin key still works"
        assert (
            await stack.scalar(
                "SELECT status FROM compensations WHERE compensation_id = :c", c=held
            )
            == "in_review"
        ), "the held refund was not paid"
        assert (
            await stack.scalar(
                "SELECT count(*) FROM merchant_limits WHERE merchant_id = :m", m=BISTRO
            )
            == 0
        )
        tiers = await stack.scalar(
            "SELECT jsonb_array_length(tiers) FROM guarantee_policies WHERE merchant_id = :m",
            m=BISTRO,
        )
        assert tiers == 3, "the policy is the one the merchant's own admin stored"


async def test_an_incident_on_an_order_returned_in_full_pays_no_voucher(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """The customer got every cent of the 40.00 order back, then operations reports the
    dish came 25 minutes late. A claim on that order is refused (`order_returned`); the
    incident must not pay the fruit plate (8.00) on an order nobody paid for either."""
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await publish(
            infra.bootstrap_servers,
            stack.purchases,
            [purchase("c-full", "o-full", "40.00"), returned("c-full", "o-full", "40.00")],
        )
        async with stack.consumer():
            await stack.wait_handled(2)
            assert await stack.scalar("SELECT returned_minor FROM orders") == 4000
            late = [incident("c-full", "o-full", "25"), incident("c-kept", "o-kept", "25")]
            await publish(infra.bootstrap_servers, stack.purchases, [purchase("c-kept", "o-kept")])
            await stack.wait_handled(3)
            await publish(infra.bootstrap_servers, stack.incidents, late)
            await stack.wait_handled(5)
        assert (
            await stack.scalar("SELECT count(*) FROM compensations WHERE order_id = 'o-kept'") > 0
        ), "the incidents were judged: the order still paid for is compensated"
        assert (
            await stack.scalar("SELECT count(*) FROM compensations WHERE order_id = 'o-full'") == 0
        ), "nothing is paid on an order returned in full"
        assert await stack.scalar("SELECT count(*) FROM vouchers WHERE customer_id = 'c-full'") == 0


async def test_a_partner_key_cannot_read_another_merchants_guarantee_claim(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """A claim id leaks (a screenshot, a support ticket): a key bound to another merchant
    reading it would learn the customer, the order and what was paid. It answers 404, as
    a catalogue claim of another merchant does; the merchant's own key reads it."""
    from shared.auth import create_key

    async with rewards_stack(infra, rewards_db, unique) as stack:
        async with stack.engine.begin() as conn:
            rival = await create_key(conn, "rival-app", ["rewards:read"], merchant_id="m-rival")
            own = await create_key(conn, "bistro-app", ["rewards:read"], merchant_id=BISTRO)
        async with serving(stack, infra, workers=False) as client:
            put = await client.put(f"/v1/admin/policies/{BISTRO}/dish_wait_time", json=DISH_WAIT)
            assert put.status_code == 200, put.text
            filed = await client.post(
                "/v1/customers/c-read/guarantee-claims", json=claim_body("o-unknown", 12)
            )
            assert filed.status_code == 201, filed.text
            path = f"/v1/guarantee-claims/{filed.json()['claim_id']}"
            theirs = await client.get(path, headers={"Authorization": f"Bearer {rival.plaintext}"})
            assert theirs.status_code == 404, theirs.text
            assert theirs.json()["code"] == "guarantee_claim_not_found"
            mine = await client.get(path, headers={"Authorization": f"Bearer {own.plaintext}"})
            assert mine.status_code == 200, mine.text
            assert mine.json()["order_id"] == "o-unknown"


async def test_approving_the_higher_held_part_first_still_pays_the_lower_one_in_full(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """No return: the reviewer approves tier 3 (180.00) before tier 2 (20.00). Capping an
    approval to the order as recorded must not cost the customer the lower part: double
    the 100.00 in all, whichever part is approved first."""
    async with rewards_stack(infra, rewards_db, unique) as stack:
        async with serving(stack, infra) as client:
            await bistro_order_recorded(stack, infra, client, "c-ord", "o-ord")
            await claim_held_for_review(client, "c-ord", "o-ord")
            held = await stack.rows(
                "SELECT compensation_id FROM compensations WHERE status = 'in_review' "
                "ORDER BY tier DESC"
            )
            for row in held:
                approved = await client.post(
                    f"/v1/admin/reviews/{row.compensation_id}/approve", json={}
                )
                assert approved.status_code == 200, approved.text
        assert await _compensations(stack, "o-ord") == [
            (1, "granted", 0),
            (2, "granted", 2000),
            (3, "granted", 18000),
        ]
