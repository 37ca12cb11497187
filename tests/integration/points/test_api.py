"""The partner API over HTTP on a real database, with purchases driven through Kafka:
balance, ledger pages, redemptions (concurrency, idempotency, cancellation), scopes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.points.domain.moments import add_months
from services.points.scopes import POINTS_READ, POINTS_REDEEM
from shared.auth import Scope
from tests.integration.points.api_client import PointsApi, points_api, problem
from tests.integration.points.helpers import NOW, days_ago, points_stack, purchase
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(infra: Infra, points_db: str) -> AsyncIterator[PointsApi]:
    async with points_api(infra, points_db) as running:
        yield running


async def test_balance_shows_pending_dates_tier_progress_and_never_expired_points(
    infra: Infra, points_db: str, unique: str, api: PointsApi
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.consumer():
            await publish(
                infra.bootstrap_servers,
                stack.inbound,
                [
                    purchase("ann", "o-1", "100.00", days_ago(1)),
                    purchase("ann", "o-2", "40.50", days_ago(350), merchant="books"),
                ],
            )
            await stack.wait_handled(2)
    reader = await api.key(POINTS_READ)
    body = await api.balance("ann", reader)
    assert (body["available"], body["pending"]) == (40, 100), "old points free, new pending"
    released = days_ago(1) + timedelta(days=14)
    assert [(datetime.fromisoformat(r["at"]), r["points"]) for r in body["pending_releases"]] == [
        (released, 100)
    ], "pending points show the date they become available"
    assert body["expiring_soon"] == 40, "the 350-day-old points expire within 30 days"
    assert body["lifetime_earned"] == 140 and body["purchase_count"] == 2
    assert body["tier"] == "member"
    assert body["progress"] == {
        "next_tier": "silver",
        "purchases_needed": 5,
        "spend_needed": "459.50",
        "currency": "EUR",
    }, (
        "Silver needs 6 settled purchases and 500.00; one (40.50) has settled in the window, "
        "yesterday's is still inside its return window"
    )
    api.clock.pinned = add_months(NOW, 13)
    later = await api.balance("ann", reader)
    assert (later["available"], later["pending"], later["expiring_soon"]) == (0, 0, 0), (
        "points past their expiry never show, though the expiry job has not run"
    )
    problem(
        await api.client.get("/v1/customers/nobody/balance", headers=reader),
        404,
        "customer_not_found",
    )


async def test_ledger_pages_with_an_opaque_cursor_and_filters(
    infra: Infra, points_db: str, unique: str, api: PointsApi
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.consumer():
            sales = [
                purchase("bo", f"o-{n}", "10.00", days_ago(30 - n), merchant=f"m-{n % 2}")
                for n in range(5)
            ]
            await publish(infra.bootstrap_servers, stack.inbound, sales)
            await stack.wait_handled(5)
    admin = await api.key(Scope.ADMIN)
    assert (await api.adjust("bo", 7, "adj-bo", admin)).status_code == 201
    reader = await api.key(POINTS_READ)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await api.client.get("/v1/customers/bo/ledger", params=params, headers=reader)
        assert page.status_code == 200, page.text
        seen += page.json()["entries"]
        cursor, pages = page.json()["next_cursor"], pages + 1
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 6, "six entries in pages of two"
    assert [e["id"] for e in seen] == sorted((e["id"] for e in seen), reverse=True), "newest first"
    assert [e["kind"] for e in seen] == ["adjustment"] + ["accrual"] * 5
    assert seen[0]["reason"] == "goodwill"

    async def ledger(**params: Any) -> list[dict[str, Any]]:
        response = await api.client.get("/v1/customers/bo/ledger", params=params, headers=reader)
        assert response.status_code == 200, response.text
        return list(response.json()["entries"])

    assert len(await ledger(kind="adjustment")) == 1
    assert len(await ledger(kind=["adjustment", "accrual"])) == 6
    assert {e["merchant_id"] for e in await ledger(merchant_id="m-1")} == {"m-1"}
    window = {"from": days_ago(29).isoformat(), "to": days_ago(27).isoformat()}
    assert [e["reference"] for e in await ledger(**window)] == ["o-2", "o-1"], "[from, to)"
    bad = await api.client.get("/v1/customers/bo/ledger?cursor=bm9wZQ", headers=reader)
    assert problem(bad, 422, "invalid_cursor")["field"] == "cursor"
    naive = await api.client.get(
        "/v1/customers/bo/ledger", params={"from": "2026-01-01T00:00:00"}, headers=reader
    )
    assert problem(naive, 422, "validation_failed")["errors"][0]["field"] == "query.from"
    nul = await api.client.get(
        "/v1/customers/bo/ledger", params={"merchant_id": "m\x00"}, headers=reader
    )
    assert problem(nul, 422, "validation_failed")["errors"][0]["field"] == "query.merchant_id"
    bound = await api.key(POINTS_READ, merchant="m-0")
    mine = await api.client.get("/v1/customers/bo/ledger", headers=bound)
    assert {e["merchant_id"] for e in mine.json()["entries"]} == {"m-0"}, (
        "a merchant-bound key sees only its merchant's entries"
    )
    other = await api.client.get("/v1/customers/bo/ledger?merchant_id=m-1", headers=bound)
    problem(other, 403, "merchant_mismatch")


async def test_fifty_concurrent_redemptions_over_http_never_overspend(api: PointsApi) -> None:
    admin = await api.key(Scope.ADMIN)
    assert (await api.adjust("kim", 100, "adj-kim", admin)).status_code == 201
    redeemer = await api.key(POINTS_REDEEM)
    answers = await asyncio.gather(
        *(api.redeem("kim", 7, f"key-{n}", redeemer, reference=f"b-{n}") for n in range(50))
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(201) == 100 // 7, "exactly as many redemptions as 100 points allow"
    assert statuses.count(409) == 50 - 100 // 7, f"the rest are refused: {statuses}"
    refused = next(r for r in answers if r.status_code == 409)
    body = problem(refused, 409, "insufficient_points")
    assert body["requested"] == 7 and 0 <= body["available"] < 7
    balance = await api.balance("kim", await api.key(POINTS_READ))
    assert balance["available"] == 100 % 7, "never below zero"
    report = await api.client.get("/v1/admin/invariants", headers=admin)
    assert report.json()["sound"], report.text


async def test_the_same_idempotency_key_returns_the_same_redemption(api: PointsApi) -> None:
    admin = await api.key(Scope.ADMIN)
    await api.adjust("lea", 50, "adj-lea", admin)
    redeemer = await api.key(POINTS_REDEEM)
    first = await api.redeem("lea", 20, "k-1", redeemer)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "completed" and first.json()["balance"]["available"] == 30
    again = await api.redeem("lea", 20, "k-1", redeemer)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["redemption_id"] == first.json()["redemption_id"]
    assert again.json()["balance"]["available"] == 30, "a retried key does not debit twice"
    changed = await api.redeem("lea", 25, "k-1", redeemer)
    problem(changed, 422, "idempotency_key_reused")
    missing = await api.client.post(
        "/v1/customers/lea/redemptions",
        json={"points": 1, "merchant_id": "cinema", "reference": "x"},
        headers=redeemer,
    )
    body = problem(missing, 422, "validation_failed")
    assert body["errors"][0]["field"] == "header.Idempotency-Key"
    too_much = await api.redeem("lea", 31, "k-2", redeemer)
    problem(too_much, 409, "insufficient_points")
    retried = await api.redeem("lea", 30, "k-2", redeemer)
    assert retried.status_code == 201, "a refused key stored nothing and may be used again"
    as_float = await api.client.post(
        "/v1/customers/lea/redemptions",
        json={"points": 1.5, "merchant_id": "cinema", "reference": "x"},
        headers={**redeemer, "Idempotency-Key": "k-3"},
    )
    assert problem(as_float, 422, "validation_failed")["errors"][0]["field"] == "body.points"


async def test_cancelling_gives_the_points_back_with_their_original_expiry(
    infra: Infra, points_db: str, unique: str, api: PointsApi
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.consumer():
            await publish(
                infra.bootstrap_servers,
                stack.inbound,
                [purchase("max", "o-old", "30.00", days_ago(350))],
            )
            await stack.wait_handled(1)
    admin, reader = await api.key(Scope.ADMIN), await api.key(POINTS_READ)
    await api.adjust("max", 100, "adj-max", admin)  # a fresh lot, expiring in 12 months
    before = await api.balance("max", reader)
    assert before["expiring_soon"] == 30 and before["available"] == 130
    redeemer = await api.key(POINTS_REDEEM, merchant="cinema")
    spent = await api.redeem("max", 40, "k-max", redeemer)
    assert spent.status_code == 201, spent.text
    after = await api.balance("max", reader)
    assert after["expiring_soon"] == 0, "the soonest-expiring points are spent first"
    redemption_id = spent.json()["redemption_id"]
    elsewhere = await api.key(POINTS_REDEEM, merchant="bakery")
    problem(
        await api.client.post(f"/v1/redemptions/{redemption_id}/cancel", headers=elsewhere),
        403,
        "merchant_mismatch",
    )
    cancelled = await api.client.post(f"/v1/redemptions/{redemption_id}/cancel", headers=redeemer)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    restored = await api.balance("max", reader)
    assert restored["available"] == 130
    assert restored["expiring_dates"] == before["expiring_dates"], (
        "points come back to their own lots, with their original expiry date"
    )
    twice = await api.client.post(f"/v1/redemptions/{redemption_id}/cancel", headers=redeemer)
    assert twice.status_code == 200 and twice.json()["balance"]["available"] == 130
    unknown = "00000000-0000-4000-8000-000000000000"
    problem(
        await api.client.post(f"/v1/redemptions/{unknown}/cancel", headers=redeemer),
        404,
        "redemption_not_found",
    )


async def test_keys_scopes_and_merchant_binding(api: PointsApi) -> None:
    no_key = await api.client.get("/v1/customers/kai/balance")
    assert problem(no_key, 401, "api_key_missing")
    assert no_key.headers["www-authenticate"].startswith("Bearer")
    forged = {"Authorization": "Bearer lk_0123456789abcdef_" + "x" * 43}
    problem(
        await api.client.get("/v1/customers/kai/balance", headers=forged), 401, "api_key_invalid"
    )
    reader = await api.key(POINTS_READ)
    problem(await api.redeem("kai", 1, "k", reader), 403, "scope_missing")
    problem(await api.client.get("/v1/admin/liability", headers=reader), 403, "scope_missing")
    problem(await api.adjust("kai", 5, "adj-kai", reader), 403, "scope_missing")
    bound = await api.key(POINTS_REDEEM, merchant="cinema")
    problem(await api.redeem("kai", 1, "k", bound, merchant="bakery"), 403, "merchant_mismatch")
    problem(await api.redeem("kai", 1, "k", bound), 409, "insufficient_points")
    docs = await api.client.get("/openapi.json")
    paths = docs.json()["paths"]
    balance_doc = paths["/v1/customers/{customer_id}/balance"]["get"]["responses"]
    assert "application/problem+json" in balance_doc["401"]["content"]
    assert (await api.client.get("/docs")).status_code == 200
