"""The admin API over HTTP on a real database: rule versions (and their effect on accrual
through Kafka) with the audit trail of their edits, adjustments with who/when/why,
liability per merchant, parked returns and the invariant check, which must report a
customer whose books were tampered with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from services.points.scopes import POINTS_READ, POINTS_REDEEM
from shared.auth import Scope
from tests.integration.points.api_client import PointsApi, points_api, problem
from tests.integration.points.helpers import NOW, days_ago, points_stack, purchase, returned
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(infra: Infra, points_db: str) -> AsyncIterator[PointsApi]:
    async with points_api(infra, points_db) as running:
        yield running


def version(at: str, **rules: Any) -> dict[str, Any]:
    return {"effective_from": at, **rules}


async def test_rule_versions_start_in_the_future_and_only_future_ones_change(
    infra: Infra, points_db: str, unique: str, api: PointsApi
) -> None:
    admin = await api.key(Scope.ADMIN)
    api.clock.pinned = days_ago(3)
    start = days_ago(2).isoformat()
    created = await api.client.post(
        "/v1/admin/rules",
        json=version(start, base_rate="2", minimum_order="5.00", campaigns=[]),
        headers=admin,
    )
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["created_by"] == await api.key_id(admin), "who created the version is kept"
    assert rule["base_rate"] == "2" and rule["minimum_order"] == "5.00"
    assert rule["tiers"]["thresholds"][0] == {
        "tier": "silver",
        "min_purchases": 6,
        "min_spend": "500.00",
    }, "the default thresholds are stated"
    read = await api.client.get(f"/v1/admin/rules/{rule['id']}", headers=admin)
    assert read.json() == rule
    edited = await api.client.put(
        f"/v1/admin/rules/{rule['id']}",
        json=version(start, base_rate="3", minimum_order="5.00"),
        headers=admin,
    )
    assert edited.status_code == 200 and edited.json()["base_rate"] == "3", "PUT replaces it"
    duplicate = await api.client.post("/v1/admin/rules", json=version(start), headers=admin)
    problem(duplicate, 409, "rule_version_exists")
    past = await api.client.post(
        "/v1/admin/rules", json=version(days_ago(4).isoformat()), headers=admin
    )
    assert problem(past, 422, "effective_from_in_past")["field"] == "effective_from"
    easier_gold = {
        "thresholds": [
            {"tier": "silver", "min_purchases": 6, "min_spend": "500.00"},
            {"tier": "gold", "min_purchases": 2, "min_spend": "500.00"},
            {"tier": "platinum", "min_purchases": 24, "min_spend": "5000.00"},
        ]
    }
    invalid = await api.client.post(
        "/v1/admin/rules", json=version(days_ago(1).isoformat(), tiers=easier_gold), headers=admin
    )
    assert "gold must not be easier" in problem(invalid, 422, "invalid_rule")["detail"]
    float_rate = await api.client.post(
        "/v1/admin/rules", json=version(days_ago(1).isoformat(), base_rate=1.5), headers=admin
    )
    problem(float_rate, 422, "validation_failed")

    api.clock.pinned = None  # the version is in force now: edits are refused
    late = await api.client.put(
        f"/v1/admin/rules/{rule['id']}", json=version(start, base_rate="9"), headers=admin
    )
    problem(late, 409, "rule_version_in_force")
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.consumer():
            await publish(
                infra.bootstrap_servers,
                stack.inbound,
                [
                    purchase("ray", "o-before", "10.00", days_ago(2.5)),
                    purchase("ray", "o-after", "10.00", days_ago(1)),
                    purchase("ray", "o-small", "4.00", days_ago(1)),
                ],
            )
            await stack.wait_handled(3)
    entries = await api.client.get("/v1/customers/ray/ledger", headers=await api.key(POINTS_READ))
    earned = {e["reference"]: e["points"] for e in entries.json()["entries"]}
    assert earned == {"o-before": 10, "o-after": 30}, (
        "the version in force at each purchase applies: defaults before, base rate 3 after, "
        "and nothing below the 5.00 minimum"
    )
    listed = await api.client.get("/v1/admin/rules", headers=admin)
    assert [r["id"] for r in listed.json()] == [rule["id"]]


def _content(version_or_edit: dict[str, Any]) -> dict[str, Any]:
    """The rules alone, without who/when/id: the shape of a RuleVersionIn."""
    audit = {"id", "created_by", "recorded_at", "updated_by", "updated_at"}
    return {k: v for k, v in version_or_edit.items() if k not in audit | {"edited_by", "edited_at"}}


async def test_rule_edits_keep_who_when_and_what_they_replaced(api: PointsApi) -> None:
    creator, editor = await api.key(Scope.ADMIN), await api.key(Scope.ADMIN)
    api.clock.pinned = NOW
    start, later = NOW + timedelta(days=30), NOW + timedelta(days=31)
    created = await api.client.post(
        "/v1/admin/rules", json=version(start.isoformat(), base_rate="2"), headers=creator
    )
    assert created.status_code == 201, created.text
    original = created.json()
    assert (original["updated_by"], original["updated_at"]) == (None, None), "never edited yet"
    path = f"/v1/admin/rules/{original['id']}"
    none_yet = await api.client.get(f"{path}/edits", headers=creator)
    assert none_yet.status_code == 200 and none_yet.json() == [], "no edit, no history"

    first_edit_at = NOW + timedelta(hours=1)
    api.clock.pinned = first_edit_at
    first = await api.client.put(
        path, json=version(start.isoformat(), base_rate="3"), headers=editor
    )
    assert first.status_code == 200, first.text
    edited = first.json()
    assert edited["updated_by"] == await api.key_id(editor), "the editing key is recorded"
    assert datetime.fromisoformat(edited["updated_at"]) == first_edit_at, "and when it edited"
    assert edited["created_by"] == await api.key_id(creator), "the creator stays the creator"

    second_edit_at = NOW + timedelta(hours=2)
    api.clock.pinned = second_edit_at
    second = await api.client.put(
        path, json=version(later.isoformat(), base_rate="4", minimum_order="5.00"), headers=creator
    )
    assert second.status_code == 200, second.text
    refused = await api.client.put(
        path, json=version(NOW.isoformat(), base_rate="9"), headers=editor
    )
    problem(refused, 422, "effective_from_in_past")

    history = await api.client.get(f"{path}/edits", headers=editor)
    assert history.status_code == 200, history.text
    edits = history.json()
    assert [(e["edited_by"], datetime.fromisoformat(e["edited_at"])) for e in edits] == [
        (await api.key_id(editor), first_edit_at),
        (await api.key_id(creator), second_edit_at),
    ], "one row per accepted edit, oldest first, with who edited and when"
    assert [_content(e) for e in edits] == [_content(original), _content(edited)], (
        "each edit keeps the complete content it replaced"
    )
    assert datetime.fromisoformat(edits[0]["effective_from"]) == start
    current = (await api.client.get(path, headers=creator)).json()
    assert (current["base_rate"], current["updated_by"]) == ("4", await api.key_id(creator))
    with pytest.raises(DBAPIError, match="append-only"):
        async with api.app.state.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE earning_rule_edits SET edited_by = 'someone'"))


async def test_rule_edits_need_a_known_version_and_the_admin_scope(api: PointsApi) -> None:
    admin = await api.key(Scope.ADMIN)
    api.clock.pinned = NOW
    created = await api.client.post(
        "/v1/admin/rules", json=version((NOW + timedelta(days=30)).isoformat()), headers=admin
    )
    assert created.status_code == 201, created.text
    unknown = await api.client.get("/v1/admin/rules/999999/edits", headers=admin)
    problem(unknown, 404, "rule_version_not_found")
    for scope in (POINTS_READ, POINTS_REDEEM):
        outsider = await api.key(scope)
        refused = await api.client.get(
            f"/v1/admin/rules/{created.json()['id']}/edits", headers=outsider
        )
        problem(refused, 403, "scope_missing")


async def test_adjustments_keep_who_when_and_why(api: PointsApi) -> None:
    admin = await api.key(Scope.ADMIN)
    api.clock.pinned = NOW
    made = await api.adjust("eve", 25, "adj-1", admin, reason="lost receipt", merchant_id="m-1")
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["actor"] == f"points test ({await api.key_id(admin)})", "the key's name and id"
    assert body["reason"] == "lost receipt"
    assert body["balance"] == {"available": 25, "pending": 0, "debt": 0}
    assert body["occurred_at"].startswith(NOW.isoformat()[:19])
    replay = await api.adjust("eve", 25, "adj-1", admin, reason="lost receipt", merchant_id="m-1")
    assert replay.status_code == 201 and replay.json()["balance"]["available"] == 25
    problem(await api.adjust("eve", 30, "adj-1", admin), 409, "adjustment_conflict")
    taken = await api.adjust("eve", -40, "adj-2", admin, reason="fraud")
    assert taken.json()["balance"] == {"available": -15, "pending": 0, "debt": 15}, (
        "taking more than the customer holds leaves a visible debt"
    )
    zero = await api.adjust("eve", 0, "adj-3", admin)
    assert problem(zero, 422, "validation_failed")["errors"][0]["field"] == "body.points"
    slash = await api.adjust("a/b", 5, "adj-5", admin)  # found by the fuzzer: was a 500
    assert problem(slash, 422, "validation_failed")["errors"][0]["field"] == "body.customer_id"
    blank = await api.adjust("eve", 5, "adj-4", admin, reason="   ")
    assert problem(blank, 422, "validation_failed")["errors"][0]["field"] == "body.reason"
    first = await api.client.get("/v1/admin/adjustments?limit=1", headers=admin)
    assert [a["adjustment_id"] for a in first.json()["adjustments"]] == ["adj-2"]
    second = await api.client.get(
        "/v1/admin/adjustments",
        params={"limit": 1, "cursor": first.json()["next_cursor"]},
        headers=admin,
    )
    assert [a["adjustment_id"] for a in second.json()["adjustments"]] == ["adj-1"]
    assert second.json()["next_cursor"] is None


async def test_liability_per_merchant_and_parked_returns(
    infra: Infra, points_db: str, unique: str, api: PointsApi
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.consumer():
            await publish(
                infra.bootstrap_servers,
                stack.inbound,
                [
                    purchase("ivy", "o-1", "50.00", days_ago(20), merchant="books"),
                    purchase("ivy", "o-2", "30.00", days_ago(2), merchant="books"),
                    purchase("joe", "o-3", "70.00", days_ago(1), merchant="garden"),
                    returned("joe", "o-unseen", "r-1", "5.00", days_ago(1)),
                    returned("joe", "o-unseen-2", "r-2", "7.25", days_ago(1)),
                ],
            )
            await stack.wait_handled(5)
    admin = await api.key(Scope.ADMIN)
    await api.adjust("joe", -100, "adj-joe", admin, reason="chargeback")
    liability = (await api.client.get("/v1/admin/liability", headers=admin)).json()
    assert liability["merchants"] == [
        {"merchant_id": "books", "available": 50, "pending": 30},
    ], "garden's pending points were clawed back by the adjustment (pending first)"
    assert (liability["total_available"], liability["total_pending"]) == (50, 30)
    assert liability["total_debt"] == 30, "joe owes 100 - 70 points"
    first = await api.client.get("/v1/admin/parked-returns?limit=1", headers=admin)
    parked = first.json()["returns"]
    assert [(r["return_id"], r["status"], r["refunded_amount"]) for r in parked] == [
        ("r-1", "parked", "5.00")
    ]
    rest = await api.client.get(
        "/v1/admin/parked-returns", params={"cursor": first.json()["next_cursor"]}, headers=admin
    )
    assert [r["refunded_amount"] for r in rest.json()["returns"]] == ["7.25"]


async def test_the_invariant_check_reports_a_tampered_account(
    infra: Infra, points_db: str, unique: str, api: PointsApi
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.consumer():
            sales = [purchase(f"c-{n}", f"o-{n}", "20.00", days_ago(30)) for n in range(5)]
            await publish(infra.bootstrap_servers, stack.inbound, sales)
            await stack.wait_handled(5)
    admin = await api.key(Scope.ADMIN)
    redeemer = await api.key(POINTS_REDEEM)
    assert (await api.redeem("c-1", 15, "k-1", redeemer)).status_code == 201
    clean = (await api.client.get("/v1/admin/invariants?limit=2", headers=admin)).json()
    assert clean["sound"] and clean["checked_customers"] == 2 and clean["next_cursor"]
    assert clean["ledger_out_of_step"] == []
    async with api.app.state.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE lots SET redeemed = redeemed + 3 WHERE customer_id = 'c-3'")
        )
    seen: list[dict[str, Any]] = []
    cursor, checked = None, 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/v1/admin/invariants", params=params, headers=admin)).json()
        seen += page["violations"]
        checked += page["checked_customers"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert checked == 5, "every customer is checked once across the pages"
    assert {v["customer_id"] for v in seen} == {"c-3"}, "only the tampered customer breaks"
    assert {v["kind"] for v in seen} == {"balance_mismatch", "redemption_allocation_mismatch"}
