"""Catalogue claims and reads no caller can game, over HTTP on the real broker and
PostgreSQL: a merchant-bound key neither claims another merchant's item nor reads another
merchant's voucher codes or guarantee claims; an idempotency key reused for another item is
refused like a redemption's, a repeated one returns the same claim even when sent at once;
an admin cannot lower an item's stock or budget below the units already claimed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.auth import create_key
from tests.integration.rewards.helpers import NOW, RewardsStack, days_ago, rewards_stack, serving
from tests.integration.rewards.points_book import PointsBook
from tests.support.counting import publish, wait_until
from tests.support.infra import Infra

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


async def _item(client: httpx.AsyncClient, item_id: str, **more: Any) -> httpx.Response:
    body = {
        "reward_code": f"{item_id}-voucher",
        "title": item_id,
        "points_cost": 50,
        "claimable_from": days_ago(1).isoformat(),
        "claimable_until": (NOW + timedelta(days=30)).isoformat(),
        "voucher_valid_days": 30,
        "total_stock": 5,
        **more,
    }
    return await client.put(f"/v1/admin/catalogue/{item_id}", json=body)


async def _funded(stack: RewardsStack, infra: Infra, customer: str) -> PointsBook:
    book = PointsBook(customer)
    events = [book.buy(f"{customer}-1", 1000), book.settle(f"{customer}-1")]
    await publish(infra.bootstrap_servers, stack.points_topic, events)

    async def projected() -> object:
        got = await stack.scalar(
            "SELECT available FROM customers WHERE customer_id = :c", c=customer
        )
        return True if got == 1000 else f"projection says {got}"

    await wait_until(projected, timeout=30)
    return book


async def _key(stack: RewardsStack, merchant: str) -> dict[str, str]:
    async with stack.engine.begin() as conn:
        key = await create_key(conn, f"{merchant}-app", ["rewards:claim", "rewards:read"], merchant)
    return {"Authorization": f"Bearer {key.plaintext}"}


def _problem(response: httpx.Response, status: int, code: str, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["code"] == code, body
    assert body.get("field") == field, f"the problem names the field: {body}"


async def _claim(
    client: httpx.AsyncClient, item: str, key: str | None = None, **headers: str
) -> httpx.Response:
    body = {"item_id": item} if key is None else {"item_id": item, "idempotency_key": key}
    return await client.post("/v1/customers/una/claims", json=body, headers=headers)


async def _issue(stack: RewardsStack, infra: Infra, una: PointsBook, claims: list[str]) -> None:
    """The points service's debits for `claims`, and wait until each has its voucher."""
    debits = [una.debit(claim, 50, str(uuid.uuid4())) for claim in claims]
    await publish(infra.bootstrap_servers, stack.points_topic, debits)

    async def issued() -> object:
        done = await stack.scalar(
            "SELECT count(*) FROM catalogue_claims WHERE state = 'issued'"
            " AND claim_id::text = ANY(:ids)",
            ids=claims,
        )
        return True if done == len(claims) else f"{done}/{len(claims)} issued"

    await wait_until(issued, timeout=30)


async def test_a_merchant_bound_key_claims_and_reads_only_its_merchants_rewards(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack, serving(stack, infra) as admin:
        for item, merchant in (("wine", "bistro"), ("cake", "cafe"), ("mug", None)):
            assert (await _item(admin, item, merchant_id=merchant)).status_code == 200
        una = await _funded(stack, infra, "una")
        bistro = await _key(stack, "bistro")
        cafes = (await _claim(admin, "cake", "cake-1")).json()["claim_id"]
        _problem(await _claim(admin, "cake", **bistro), 403, "merchant_mismatch", "item_id")
        replayed = await _claim(admin, "cake", "cake-1", **bistro)
        _problem(replayed, 403, "merchant_mismatch", "item_id")
        assert (
            await stack.scalar("SELECT units_claimed FROM catalogue_items WHERE item_id = 'cake'")
            == 1
        )
        assert await stack.scalar("SELECT count(*) FROM catalogue_claims") == 1, (
            "a refused claim reserves nothing and asks for no debit"
        )
        own = await _claim(admin, "wine", **bistro)
        house = await _claim(admin, "mug", **bistro)
        assert own.status_code == 202 and house.status_code == 202, (own.text, house.text)
        claims = [cafes, own.json()["claim_id"], house.json()["claim_id"]]
        await _issue(stack, infra, una, claims)
        await stack.execute(
            "INSERT INTO guarantee_claims (claim_id, customer_id, merchant_id, order_id,"
            " promise_kind, measured_value, measured_unit, order_amount_minor, currency,"
            " filed_at, status) SELECT gen_random_uuid(), 'una', m, 'o-' || m, 'dish_wait_time',"
            " 900, 'seconds', 8000, 'EUR', now(), 'in_review'"
            " FROM unnest(ARRAY['bistro', 'cafe']) AS m"
        )
        everything = (await admin.get("/v1/customers/una/rewards")).json()
        seen = (await admin.get("/v1/customers/una/rewards", headers=bistro)).json()
        cafe_claim = await admin.get(f"/v1/claims/{cafes}", headers=bistro)
        own_claim = await admin.get(f"/v1/claims/{claims[1]}", headers=bistro)
        house_claim = await admin.get(f"/v1/claims/{claims[2]}", headers=bistro)
    assert sorted(v["merchant_id"] or "-" for v in everything["vouchers"]) == [
        "-",
        "bistro",
        "cafe",
    ]
    assert len(everything["guarantee_claims"]) == 2
    assert [v["merchant_id"] for v in seen["vouchers"]] == ["bistro"], (
        "a bistro key must not read the cafe's (or anyone's) voucher codes"
    )
    bistro_claim = await stack.scalar(
        "SELECT claim_id::text FROM guarantee_claims WHERE merchant_id = 'bistro'"
    )
    assert seen["guarantee_claims"] == [bistro_claim], "only the claims filed with the bistro"
    assert cafe_claim.status_code == 404, cafe_claim.text
    assert own_claim.json()["voucher"]["merchant_id"] == "bistro", own_claim.text
    assert house_claim.json()["voucher"]["merchant_id"] is None, "the programme's own item"


async def test_an_idempotency_key_is_one_claim_of_one_item(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack, serving(stack, infra) as admin:
        for item in ("tea", "cake"):
            assert (await _item(admin, item)).status_code == 200
        await _funded(stack, infra, "una")
        first = await _claim(admin, "tea", "k-1")
        assert first.status_code == 202, first.text
        other_item = await _claim(admin, "cake", "k-1")
        _problem(other_item, 422, "idempotency_key_reused", "idempotency_key")
        again = await _claim(admin, "tea", "k-1")
        assert again.json()["claim_id"] == first.json()["claim_id"], "same key, same body: replay"
        at_once = await asyncio.gather(*(_claim(admin, "cake", "k-2") for _ in range(6)))
        assert {r.status_code for r in at_once} == {202}, [r.text for r in at_once]
        assert len({r.json()["claim_id"] for r in at_once}) == 1, "one key, one claim"
    units = await stack.rows("SELECT item_id, units_claimed FROM catalogue_items ORDER BY 1")
    assert [tuple(u) for u in units] == [("cake", 1), ("tea", 1)]
    assert await stack.scalar("SELECT count(*) FROM catalogue_claims") == 2


async def test_stock_or_budget_below_the_units_claimed_is_refused_before_any_write(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack, serving(stack, infra) as admin:
        assert (
            await _item(admin, "tea", budget_minor=1000, unit_cost_minor=100)
        ).status_code == 200
        await _funded(stack, infra, "una")
        for n in range(3):
            assert (await _claim(admin, "tea", f"k-{n}")).status_code == 202
        lowered = await _item(admin, "tea", title="renamed", total_stock=2)
        _problem(lowered, 409, "stock_below_claimed", "total_stock")
        cheaper = await _item(admin, "tea", title="renamed", budget_minor=299, unit_cost_minor=100)
        _problem(cheaper, 409, "stock_below_claimed", "budget_minor")
        dearer = await _item(admin, "tea", title="renamed", budget_minor=1000, unit_cost_minor=400)
        _problem(dearer, 409, "stock_below_claimed", "budget_minor")
        row = await stack.rows("SELECT title, total_stock, budget_minor FROM catalogue_items")
        assert [tuple(r) for r in row] == [("tea", 5, 1000)], "a refused change writes nothing"
        exact = await _item(admin, "tea", total_stock=3, budget_minor=300, unit_cost_minor=100)
        assert exact.status_code == 200, exact.text
        assert exact.json()["units_claimed"] == 3
