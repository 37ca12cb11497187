"""What a caller says is never trusted for a payout: a catalogue claim's debit is given back
only by its saga, an adjustment's actor is the calling key, a merchant-bound key stays
inside its merchant, and the same request twice is applied once."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from services.points.scopes import POINTS_READ, POINTS_REDEEM
from shared.auth import Scope
from shared.contracts.points import PointsDebited, PointsDebitReversed
from tests.integration.points.api_client import PointsApi, points_api, problem
from tests.integration.points.helpers import (
    NOW,
    credit,
    days_ago,
    points_stack,
    purchase,
    returned,
)
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


def _saga(event_type: str, customer: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "version": 1,
        "occurred_at": days_ago(0.01).isoformat(),
        "source": "rewards-test",
        "customer_id": customer,
        "data": data,
    }


async def test_a_claims_debit_is_given_back_only_by_the_saga(
    infra: Infra, points_db: str, unique: str
) -> None:
    debit = {"debit_id": "claim-1", "points": 30, "merchant_id": "cinema", "reference": "c:1"}
    async with points_stack(infra, points_db, unique) as stack, points_api(infra, points_db) as api:
        async with stack.consumer():
            await publish(
                infra.bootstrap_servers,
                stack.credits,
                [
                    credit("kim", "c-1", 100, days_ago(1)),
                    _saga("points.debit_requested", "kim", debit),
                ],
            )
            await stack.wait_handled(2)
            redemption_id = await stack.scalar(
                "SELECT redemption_id FROM redemptions WHERE claim_id = 'claim-1'"
            )
            assert redemption_id is not None, "the saga's debit is stored with its claim"
            partner = await api.key(POINTS_REDEEM)
            refused = await api.client.post(
                f"/v1/redemptions/{redemption_id}/cancel", headers=partner
            )
            body = problem(refused, 409, "redemption_belongs_to_claim")
            assert body["claim_id"] == "claim-1"
            assert (await api.balance("kim", await api.key(POINTS_READ)))["available"] == 70
            squat = await api.redeem("kim", 10, "saga:claim-2", partner)
            assert problem(squat, 422, "idempotency_key_reserved")["field"] == "Idempotency-Key"
            reversal = {"debit_id": "claim-1", "reason": "claim cancelled"}
            await publish(
                infra.bootstrap_servers,
                stack.credits,
                [_saga("points.debit_reversal_requested", "kim", reversal)],
            )
            await stack.wait_handled(3)
            out = await stack.emitted(4)
        assert any(isinstance(e, PointsDebited) for e in out)
        assert any(isinstance(e, PointsDebitReversed) for e in out), "the saga still can"
        assert (await stack.account("kim")).balance.available == 100
        await stack.sound("kim")


async def test_the_actor_of_an_adjustment_is_the_calling_key(infra: Infra, points_db: str) -> None:
    async with points_api(infra, points_db) as api:
        admin = await api.key(Scope.ADMIN)
        forged = await api.adjust("lou", 10, "adj-1", admin, actor="the-ceo")
        assert problem(forged, 422, "validation_failed")["errors"][0]["field"] == "body.actor"
        made = await api.adjust("lou", 10, "adj-2", admin)
        assert made.status_code == 201, made.text
        assert made.json()["actor"] == f"points test ({await api.key_id(admin)})"


async def _shop_admin(api: PointsApi, merchant: str) -> dict[str, str]:
    return await api.key(Scope.ADMIN, merchant=merchant)


async def test_a_merchant_bound_admin_key_stays_inside_its_merchant(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack, points_api(infra, points_db) as api:
        async with stack.consumer():
            await publish(
                infra.bootstrap_servers,
                stack.inbound,
                [
                    purchase("max", "o-1", "50.00", days_ago(2), merchant="books"),
                    purchase("max", "o-2", "70.00", days_ago(2), merchant="garden"),
                    returned("max", "o-9", "r-9", "5.00", days_ago(1)),  # parked, grocer
                ],
            )
            await stack.wait_handled(3)
        books, garden = await _shop_admin(api, "books"), await _shop_admin(api, "garden")
        admin = await api.key(Scope.ADMIN)
        other = await api.adjust("max", 5, "g-1", books, merchant_id="garden")
        problem(other, 403, "merchant_mismatch")
        mine = await api.adjust("max", 5, "b-1", books)
        assert mine.status_code == 201 and mine.json()["merchant_id"] == "books", mine.text
        taking = await api.adjust("max", -5, "b-2", books)
        assert problem(taking, 403, "merchant_bound_key")["field"] == "points"
        stolen = await api.adjust("max", 5, "b-1", garden)  # garden replays books' id
        problem(stolen, 409, "adjustment_conflict")
        await api.adjust("max", 7, "a-1", admin, merchant_id="garden")
        listed = await api.client.get("/v1/admin/adjustments", headers=books)
        assert [a["adjustment_id"] for a in listed.json()["adjustments"]] == ["b-1"]
        liability = (await api.client.get("/v1/admin/liability", headers=books)).json()
        assert [m["merchant_id"] for m in liability["merchants"]] == ["books"]
        assert liability["total_debt"] is None, "programme-wide debt is not a merchant's data"
        everyone = (await api.client.get("/v1/admin/liability", headers=admin)).json()
        assert {m["merchant_id"] for m in everyone["merchants"]} == {"books", "garden"}
        parked = await api.client.get("/v1/admin/parked-returns", headers=books)
        assert parked.json()["returns"] == [], "grocer's parked return is not books' data"
        parked_all = await api.client.get("/v1/admin/parked-returns", headers=admin)
        assert [r["return_id"] for r in parked_all.json()["returns"]] == ["r-9"]
        for path in ("/v1/admin/rules", "/v1/admin/invariants"):
            problem(await api.client.get(path, headers=books), 403, "merchant_bound_key")
        rule = {"effective_from": (NOW + timedelta(days=3)).isoformat()}
        created = await api.client.post("/v1/admin/rules", json=rule, headers=books)
        problem(created, 403, "merchant_bound_key")
        ledger = await api.client.get("/v1/customers/max/ledger", headers=books)
        assert {e["merchant_id"] for e in ledger.json()["entries"]} == {"books"}


async def test_a_return_of_someone_elses_order_or_a_replayed_one_takes_nothing_twice(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        sale = purchase("ned", "o-1", "80.00", days_ago(3))
        back = returned("ned", "o-1", "r-1", "40.00", days_ago(2))
        async with stack.consumer():
            await publish(
                infra.bootstrap_servers,
                stack.inbound,
                [
                    sale,
                    returned("oz", "o-1", "r-x", "80.00", days_ago(2)),  # not oz's order
                    back,
                    {**back, "event_id": str(uuid.uuid4())},  # the same return re-sent
                    {**sale, "event_id": str(uuid.uuid4())},  # the same order re-sent
                ],
            )
            await stack.wait_handled(5)
        dead = await stack.scalar("SELECT string_agg(error_code, ',') FROM dead_letters")
        assert dead == "return_mismatch", "a return for another customer's order is refused"
        account = await stack.account("ned")
        assert (account.lifetime_earned, account.purchase_count) == (40, 1), (
            "the return applied once, the order recorded once"
        )
        await stack.sound("ned")


async def test_the_sagas_debit_is_a_redemption_answered_once_and_only_for_its_customer(
    infra: Infra, points_db: str, unique: str
) -> None:
    """A claim's debit and its reversal run the redemption use cases themselves: announced
    only by the saga's answers (never points.redeemed / points.redemption_cancelled), applied
    once per debit id whatever the replay says, and a reversal sent for someone else's claim
    gives nothing back."""
    first = {"debit_id": "claim-1", "points": 30, "merchant_id": "cinema", "reference": "c:1"}
    inflated = {**first, "points": 5}  # the same debit id asking for other points
    too_dear = {"debit_id": "claim-2", "points": 500, "merchant_id": "cinema", "reference": "c:2"}
    cancel_1 = {"debit_id": "claim-1", "reason": "claim cancelled"}
    cancel_2 = {"debit_id": "claim-2", "reason": "claim cancelled"}
    requests = [
        credit("kim", "c-1", 100, days_ago(1)),
        _saga("points.debit_requested", "kim", first),
        _saga("points.debit_requested", "kim", inflated),
        _saga("points.debit_requested", "kim", too_dear),
        _saga("points.debit_reversal_requested", "kim", cancel_2),
        _saga("points.debit_reversal_requested", "eve", cancel_1),
        _saga("points.debit_reversal_requested", "kim", cancel_1),
        _saga("points.debit_reversal_requested", "kim", cancel_1),
        credit("kim", "c-2", 1, days_ago(0.01)),  # a sentinel: every answer before it is out
    ]
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.consumer():
            await publish(infra.bootstrap_servers, stack.credits, requests)
            await stack.wait_handled(len(requests))
            out = await stack.emitted(7)
        answers = [(e.type, e.customer_id, getattr(e.data, "reason", None)) for e in out]
        assert answers == [
            ("points.credited", "kim", "compensation: late dish"),
            ("points.debited", "kim", None),
            ("points.debit_rejected", "kim", "insufficient_points"),
            ("points.debit_rejected", "kim", "not_debited"),
            ("points.debit_rejected", "eve", "not_debited"),
            ("points.debit_reversed", "kim", None),
            ("points.credited", "kim", "compensation: late dish"),
        ], "one answer per debit and reversal; replays answer nothing; no partner events"
        debited = out[1]
        assert isinstance(debited, PointsDebited) and debited.data.points == 30
        stored = await stack.scalar(
            "SELECT string_agg(claim_id || ' ' || points || ' ' || (cancelled_at IS NOT NULL),"
            " ', ') FROM redemptions"
        )
        assert stored == "claim-1 30 true", "the first request stands, stored as a redemption"
        assert (await stack.account("kim")).balance.available == 101
        await stack.sound("kim")
