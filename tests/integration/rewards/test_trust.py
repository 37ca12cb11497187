"""Compensation no caller can game, on the real broker and PostgreSQL: claims and incidents
are checked against the order rewards recorded from pos.purchases, a customer's own report
pays at most the first tier until an incident confirms more, unknown orders wait for their
purchase, and there are caps even when a merchant configured none."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import orjson
import pytest

from tests.integration.rewards.bistro import BISTRO, bistro_order_recorded, claim_body
from tests.integration.rewards.helpers import (
    NOW,
    RESTAURANT,
    RewardsStack,
    incident,
    purchase,
    returned,
    rewards_stack,
    serving,
)
from tests.support.counting import publish, wait_until
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


async def _compensations(stack: RewardsStack, order: str) -> list[tuple[Any, ...]]:
    rows = await stack.rows(
        "SELECT tier, status, refund_minor, vouchers, review_reasons FROM compensations "
        "WHERE order_id = :o ORDER BY tier",
        o=order,
    )
    return [
        (r.tier, r.status, r.refund_minor, list(r.vouchers), list(r.review_reasons)) for r in rows
    ]


async def _until(stack: RewardsStack, sql: str, expected: object, **params: Any) -> None:
    async def reached() -> object:
        got = await stack.scalar(sql, **params)
        return True if got == expected else f"{sql}: {got!r}, expected {expected!r}"

    await wait_until(reached, timeout=30)


async def test_the_issue_15_fraud_call_pays_nothing_beyond_the_recorded_order(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """A 20.00 purchase; the claim of issue 15 states 9999.00 and 25 minutes. It used to pay
    a 19,998.00 refund. Now: refused for the amount; without an amount, the customer's own
    word pays the fruit plate only; an incident measuring 25 minutes confirms the rest,
    paid on the recorded 20.00 (double the order: 40.00 in all), never on 9999.00."""
    async with rewards_stack(infra, rewards_db, unique) as stack:
        async with serving(stack, infra) as client:
            await bistro_order_recorded(stack, infra, client, "c-fraud-1", "o-fraud-1", "20.00")
            fraud = claim_body("o-fraud-1", 25, order_amount="9999.00", currency="EUR")
            answer = await client.post("/v1/customers/c-fraud-1/guarantee-claims", json=fraud)
            assert answer.status_code == 201, answer.text
            assert (answer.json()["status"], answer.json()["reason"]) == (
                "rejected",
                "order_amount_mismatch",
            ), "a claim stating another amount than the recorded purchase is refused"
            assert await stack.scalar("SELECT count(*) FROM compensations") == 0
            in_dollars = claim_body("o-fraud-1", 25, order_amount="20.00", currency="USD")
            answer = await client.post("/v1/customers/c-fraud-1/guarantee-claims", json=in_dollars)
            assert answer.json()["reason"] == "order_currency_mismatch"
            theirs = await client.post(
                "/v1/customers/c-other/guarantee-claims", json=claim_body("o-fraud-1", 25)
            )
            assert theirs.json()["reason"] == "order_of_another_customer"
            elsewhere = await client.post(
                "/v1/customers/c-fraud-1/guarantee-claims",
                json=claim_body("o-fraud-1", 25, merchant=RESTAURANT),
            )
            assert elsewhere.json()["status"] == "rejected"

            honest = await client.post(
                "/v1/customers/c-fraud-1/guarantee-claims", json=claim_body("o-fraud-1", 25)
            )
            assert honest.json()["status"] == "in_review", honest.text
            assert "first part was paid" in honest.json()["explanation"]
            assert honest.json()["order_amount_minor"] == 2000, "the amount comes from the record"
            assert await _compensations(stack, "o-fraud-1") == [
                (1, "granted", 0, ["fruit-plate"], []),
                (2, "in_review", 400, [], ["self_reported"]),
                (3, "in_review", 3600, [], ["self_reported"]),
            ], "the customer's word pays tier 1; tiers 2 and 3 wait, computed on 20.00"
            twice = await client.post(
                "/v1/customers/c-fraud-1/guarantee-claims", json=claim_body("o-fraud-1", 25)
            )
            assert twice.json()["status"] == "nothing_owed", "the same claim again adds nothing"
            assert await stack.scalar("SELECT count(*) FROM compensations") == 3

            confirm = incident("c-fraud-1", "o-fraud-1", "25", amount="9999.00", merchant=BISTRO)
            await publish(infra.bootstrap_servers, stack.incidents, [confirm])
            await stack.wait_handled(2)
            await stack.outbox_empty()
            claim = await client.get(f"/v1/guarantee-claims/{honest.json()['claim_id']}")
            assert claim.json()["status"] == "granted", "the incident confirmed the claim"
        assert await _compensations(stack, "o-fraud-1") == [
            (1, "granted", 0, ["fruit-plate"], []),
            (2, "granted", 400, [], []),
            (3, "granted", 3600, [], []),
        ]
        events = await stack.emitted(8)
        refunds = [str(e.data.amount) for e in events if e.type == "refund.instructed"]
        assert refunds == ["4.00", "36.00"], "double the recorded 20.00 in all, never 19,998.00"
        decided = await stack.rows("SELECT decided_by FROM compensations WHERE tier > 1")
        assert {r.decided_by for r in decided} == {"policy:confirmed"}


async def test_an_incident_is_paid_on_the_recorded_amount_and_held_until_its_purchase(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """An incident stating 9999.00 for an order nobody recorded is held; the purchase of
    50.00 releases it once (a second copy of the purchase releases nothing), paying 20%
    of 50.00. An incident stating another amount for a known order pays on the record."""
    async with rewards_stack(infra, rewards_db, unique) as stack:
        async with stack.consumer():
            await publish(
                infra.bootstrap_servers,
                stack.incidents,
                [incident("ivy", "o-late", "17", amount="9999.00")],
            )
            await stack.wait_handled(1)
            assert await stack.scalar("SELECT count(*) FROM compensations") == 0, (
                "an incident for an order never seen pays nothing"
            )
            held = await stack.rows("SELECT trigger, order_id FROM held_reports")
            assert [tuple(r) for r in held] == [("incident", "o-late")]
            late = purchase("ivy", "o-late", "50.00")
            copy = {**late, "event_id": purchase("ivy", "x")["event_id"]}
            await publish(infra.bootstrap_servers, stack.purchases, [late, copy])
            await stack.wait_handled(3)
            await publish(
                infra.bootstrap_servers,
                stack.purchases,
                [purchase("ivy", "o-known", "30.00")],
            )
            await stack.wait_handled(4)
            await publish(
                infra.bootstrap_servers,
                stack.incidents,
                [incident("ivy", "o-known", "16", amount="3000.00")],
            )
            await stack.wait_handled(5)
        assert await stack.scalar("SELECT count(*) FROM held_reports") == 0
        assert await _compensations(stack, "o-late") == [
            (2, "granted", 1000, ["fruit-plate"], [])
        ], "released once, paid on the recorded 50.00"
        assert await _compensations(stack, "o-known") == [(2, "granted", 600, ["fruit-plate"], [])]


async def test_an_incident_naming_someone_elses_order_is_dead_lettered(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await publish(infra.bootstrap_servers, stack.purchases, [purchase("kim", "o-kim")])
        async with stack.consumer():
            await stack.wait_handled(1)
            await publish(
                infra.bootstrap_servers,
                stack.incidents,
                [incident("lee", "o-kim", "25"), incident("kim", "o-kim", "11")],
            )
            await stack.wait_handled(3)
        dead = await stack.rows("SELECT error_code FROM dead_letters")
        assert [r.error_code for r in dead] == ["order_of_another_customer"]
        assert await _compensations(stack, "o-kim") == [(1, "granted", 0, ["fruit-plate"], [])]


async def test_a_claim_for_an_unknown_order_waits_for_its_purchase_then_for_a_person(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        async with serving(stack, infra) as client:
            early = await client.post(
                "/v1/customers/amy/guarantee-claims",
                json=claim_body("o-soon", "12", merchant=RESTAURANT),
            )
            assert (early.json()["status"], early.json()["reason"]) == (
                "in_review",
                "order_unknown",
            )
            wrong = await client.post(
                "/v1/customers/bob/guarantee-claims",
                json=claim_body("o-soon", "12", merchant=RESTAURANT),
            )
            assert await stack.scalar("SELECT count(*) FROM compensations") == 0
            await publish(
                infra.bootstrap_servers, stack.purchases, [purchase("amy", "o-soon", "40.00")]
            )
            await stack.wait_handled(1)
            await _until(stack, "SELECT count(*) FROM held_reports", 0)
            mine = (await client.get(f"/v1/guarantee-claims/{early.json()['claim_id']}")).json()
            theirs = (await client.get(f"/v1/guarantee-claims/{wrong.json()['claim_id']}")).json()
            never = await client.post(
                "/v1/customers/amy/guarantee-claims",
                json=claim_body("o-never", "12", merchant=RESTAURANT),
            )
            closing = f"/v1/admin/guarantee-claims/{never.json()['claim_id']}/reject"
            closed = await client.post(closing, json={"note": "no such order at the till"})
            assert closed.status_code == 200 and closed.json()["status"] == "rejected", closed.text
            assert closed.json()["explanation"].startswith("rejected by admin:test")
            assert (await client.post(closing, json={})).status_code == 409
            has_compensation = f"/v1/admin/guarantee-claims/{early.json()['claim_id']}/reject"
            assert (await client.post(has_compensation, json={})).status_code == 409
            assert await stack.scalar("SELECT count(*) FROM held_reports") == 0
        assert (theirs["status"], theirs["reason"]) == ("rejected", "order_of_another_customer")
        assert mine["status"] == "in_review" and mine["compensation_id"] is not None
        assert mine["order_amount_minor"] == 4000
        assert await _compensations(stack, "o-soon") == [
            (1, "in_review", 0, ["fruit-plate"], ["order_unknown"])
        ], "a claim filed before the order was recorded is never paid automatically"
        assert await stack.scalar("SELECT count(*) FROM vouchers") == 0


async def test_a_return_after_the_reward_lowers_every_later_top_up(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await publish(infra.bootstrap_servers, stack.purchases, [purchase("joe", "o-r", "40.00")])
        async with stack.consumer():
            await stack.wait_handled(1)
            await publish(infra.bootstrap_servers, stack.incidents, [incident("joe", "o-r", "16")])
            await stack.wait_handled(2)
            await publish(
                infra.bootstrap_servers, stack.purchases, [returned("joe", "o-r", "30.00")]
            )
            await stack.wait_handled(3)
            await publish(infra.bootstrap_servers, stack.incidents, [incident("joe", "o-r", "25")])
            await stack.wait_handled(4)
            await publish(
                infra.bootstrap_servers, stack.purchases, [returned("joe", "o-r", "10.00")]
            )
            await stack.wait_handled(5)
        async with serving(stack, infra, workers=False) as client:
            after = await client.post(
                "/v1/customers/joe/guarantee-claims",
                json=claim_body("o-r", "30", merchant=RESTAURANT),
            )
            assert (after.json()["status"], after.json()["reason"]) == (
                "rejected",
                "order_returned",
            ), "a claim on an order returned in full is refused"
        assert await stack.scalar("SELECT returned_minor FROM orders") == 4000
        assert await _compensations(stack, "o-r") == [
            (2, "granted", 800, ["fruit-plate"], []),
            (3, "granted", 1200, [], []),
        ], "tier 3 pays double the 10.00 still paid for, minus the 8.00 already refunded"


async def test_measured_values_are_whole_numbers_or_decimal_strings(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """The contract says: 17 or "12.5", never the JSON number 12.5; the consumer agrees."""
    async with rewards_stack(infra, rewards_db, unique) as stack:
        orders = [purchase("val", f"o-{n}") for n in range(3)]
        await publish(infra.bootstrap_servers, stack.purchases, orders)
        as_string = incident("val", "o-0", "12.5")
        as_integer = incident("val", "o-1", "12")
        as_integer["data"]["measured"]["value"] = 12
        as_float = incident("val", "o-2", "12.5")
        as_float["data"]["measured"]["value"] = 12.5
        await publish(infra.bootstrap_servers, stack.incidents, [as_string, as_integer, as_float])
        async with stack.consumer():
            await stack.wait_handled(6)
        dead = await stack.rows("SELECT error_code, error_message FROM dead_letters")
        assert [r.error_code for r in dead] == ["schema_violation"]
        assert "decimal string" in dead[0].error_message
        paid = await stack.rows("SELECT order_id FROM compensations ORDER BY order_id")
        assert [r.order_id for r in paid] == ["o-0", "o-1"]


async def test_caps_apply_when_a_merchant_configured_none(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """Defaults: 100.00 of money (refunds and voucher value) and 5,000 points per customer
    per 30 days. A voucher's value counts once its reward definition says what it is worth."""
    async with rewards_stack(infra, rewards_db, unique) as stack:
        async with serving(stack, infra) as client:
            generous = {
                "unit": "minutes",
                "tiers": [{"over": 10, "refund_basis_points": 20000, "points": 6000}],
            }
            assert (
                await client.put("/v1/admin/policies/m-new/dish_wait_time", json=generous)
            ).status_code == 200
            voucher = {"unit": "minutes", "tiers": [{"over": 10, "vouchers": ["spa-day"]}]}
            assert (
                await client.put("/v1/admin/policies/m-spa/dish_wait_time", json=voucher)
            ).status_code == 200
            bad = await client.put(
                "/v1/admin/reward-definitions/spa-day",
                json={"title": "A spa day", "valid_days": 30, "value": "150.00"},
            )
            assert bad.status_code == 422, "a value without its currency is refused"
            spa = await client.put(
                "/v1/admin/reward-definitions/spa-day",
                json={"title": "A spa day", "valid_days": 30, "value": "150.00", "currency": "EUR"},
            )
            assert spa.status_code == 200 and spa.json()["value"] == "150.00", spa.text
            listed = (await client.get("/v1/admin/reward-definitions")).json()["rewards"]
            assert {r["reward_code"]: r["value"] for r in listed}["spa-day"] == "150.00"
            await publish(
                infra.bootstrap_servers,
                stack.purchases,
                [
                    purchase("cap", "o-big", "80.00", merchant="m-new"),
                    purchase("cap", "o-spa", "10.00", merchant="m-spa"),
                ],
            )
            await stack.wait_handled(2)
            for order, merchant in (("o-big", "m-new"), ("o-spa", "m-spa")):
                answer = await client.post(
                    "/v1/customers/cap/guarantee-claims",
                    json=claim_body(order, "11", merchant=merchant),
                )
                assert answer.json()["status"] == "in_review", answer.text
            report = (await client.get("/v1/admin/reports/budgets")).json()["merchants"]
            budgets = {line["merchant_id"]: line["budget_minor"] for line in report}
            assert budgets == {"m-new": 500_000, "m-spa": 500_000}, (
                "the report shows the default budget that applies, not 'no budget'"
            )
        assert await _compensations(stack, "o-big") == [
            (1, "in_review", 16000, [], ["customer_refund_cap", "customer_points_cap"])
        ]
        assert await _compensations(stack, "o-spa") == [
            (1, "in_review", 0, ["spa-day"], ["customer_refund_cap"])
        ], "a 150.00 voucher counts against the 100.00 default cap"


async def _green_channel_events(stack: RewardsStack) -> Counter[str]:
    rows = await stack.rows("SELECT topic, value FROM outbox")
    where = {stack.incidents: "ops", stack.rewards: "rewards"}
    return Counter(f"{where[r.topic]}:{orjson.loads(r.value)['type']}" for r in rows)


async def test_held_compensations_escalate_at_12_hours_and_everything_undecided_is_overdue_at_24(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    from datetime import timedelta

    from services.rewards.jobs import run_due_jobs_once

    async with rewards_stack(infra, rewards_db, unique) as stack:
        await publish(infra.bootstrap_servers, stack.purchases, [purchase("gc", "o-gc", "80.00")])
        async with stack.consumer():
            await stack.wait_handled(1)
        async with serving(stack, infra, workers=False, clock=lambda: NOW) as client:
            body = claim_body("o-gc", "25", merchant=RESTAURANT, order_amount="80.00")
            held = await client.post(
                "/v1/customers/gc/guarantee-claims", json={**body, "currency": "EUR"}
            )
            assert held.json()["status"] == "in_review"
        await stack.execute("DELETE FROM outbox")
        passes = [
            await run_due_jobs_once(stack.engine, stack.topics, NOW + timedelta(hours=h), 100)
            for h in (11, 12, 13, 24, 30)
        ]
        counts = [
            (p["claims_escalated"], p["compensations_escalated"], p["claims_overdue"],
             p["compensations_overdue"])
            for p in passes
        ]  # fmt: skip
        assert counts == [(0, 0, 0, 0), (1, 2, 0, 0), (0, 0, 0, 0), (0, 0, 1, 2), (0, 0, 0, 0)], (
            "escalated at 12 hours and overdue at 24, each exactly once per claim and held part"
        )
        assert await _green_channel_events(stack) == {
            "ops:claim.escalated": 1,
            "ops:compensation.escalated": 2,
            "rewards:review.overdue": 3,
        }


async def test_a_review_decision_is_signed_by_the_api_key_not_the_body(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await stack.execute(
            "INSERT INTO merchant_limits (merchant_id, customer_breach_cap) VALUES (:m, 0)",
            m=RESTAURANT,
        )
        await publish(infra.bootstrap_servers, stack.purchases, [purchase("rev", "o-rev")])
        async with stack.consumer():
            await stack.wait_handled(1)
        async with serving(stack, infra, workers=False) as client:
            body = claim_body("o-rev", "11", merchant=RESTAURANT, order_amount="80.00")
            await client.post(
                "/v1/customers/rev/guarantee-claims", json={**body, "currency": "EUR"}
            )
            reviews = (await client.get("/v1/admin/reviews")).json()["reviews"]
            assert len(reviews) == 1, reviews
            target = reviews[0]["compensation_id"]
            approved = await client.post(
                f"/v1/admin/reviews/{target}/approve", json={"actor": "the-general-manager"}
            )
            assert approved.status_code == 200, approved.text
            key_id = await stack.scalar("SELECT key_id FROM api_keys WHERE name = 'test'")
            assert approved.json()["decided_by"] == f"admin:test ({key_id})", (
                "the decider is the authenticated key, whatever the body claims"
            )
            assert approved.json()["decision_note"] == "the-general-manager"
            again = await client.post(f"/v1/admin/reviews/{target}/reject", json={})
            assert again.status_code == 409
        granted = await stack.rows(
            "SELECT decided_by FROM compensations WHERE compensation_id = :c", c=uuid.UUID(target)
        )
        assert granted[0].decided_by == f"admin:test ({key_id})"


async def test_a_key_bound_to_another_merchant_cannot_claim_for_this_one(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    from shared.auth import create_key

    async with rewards_stack(infra, rewards_db, unique) as stack:
        await publish(infra.bootstrap_servers, stack.purchases, [purchase("kb", "o-kb")])
        async with stack.consumer():
            await stack.wait_handled(1)
        async with stack.engine.begin() as conn:
            key = await create_key(conn, "bistro-app", ["claims:file"], merchant_id=BISTRO)
        async with serving(stack, infra, workers=False) as client:
            body = claim_body("o-kb", "25", merchant=RESTAURANT, order_amount="80.00")
            answer = await client.post(
                "/v1/customers/kb/guarantee-claims",
                json={**body, "currency": "EUR"},
                headers={"Authorization": f"Bearer {key.plaintext}"},
            )
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert await stack.scalar("SELECT count(*) FROM guarantee_claims") == 0
