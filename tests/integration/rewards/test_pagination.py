"""Every rewards list route pages with an opaque cursor and drops nothing.

Each list is filled past one page (with ties on the sort time, so the cursor must carry
the id too), then walked with a small `limit`: every item comes back exactly once and the
last page says `next_cursor: null`. A cursor that is not one the API issued is a 422
problem naming `cursor`; a key bound to one merchant pages through its merchant's vouchers
and claims only, whatever cursor it is handed.
"""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.rewards.domain.vouchers import new_voucher_code
from shared.auth import create_key
from tests.integration.rewards.helpers import NOW, RewardsStack, rewards_stack, serving
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

BISTRO, GRILL = "m-bistro", "m-grill"


async def _walk(
    client: httpx.AsyncClient,
    path: str,
    key: str,
    limit: int,
    headers: dict[str, str] | None = None,
) -> tuple[list[Any], int]:
    """Every item of `key` over all pages of `path`, and how many pages it took."""
    items: list[Any] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        answer = await client.get(path, params=params, headers=headers or {})
        assert answer.status_code == 200, answer.text
        pages += 1
        items.extend(answer.json()[key])
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 100, f"{path} never reached its last page"


async def _vouchers(stack: RewardsStack, customer: str, merchant: str | None, n: int) -> None:
    for i in range(n):
        at = NOW - timedelta(days=i // 3)  # three vouchers per issue time: ties to break
        await stack.execute(
            "INSERT INTO vouchers (voucher_id, code, customer_id, reward_code, origin, origin_ref,"
            " merchant_id, issued_at, expires_at) VALUES (:id, :code, :c, 'coffee', 'milestone',"
            " :ref, :m, :at, :until)",
            id=uuid.uuid4(),
            code=new_voucher_code(),
            c=customer,
            ref=f"page-test:{merchant}:{i}",
            m=merchant,
            at=at,
            until=at + timedelta(days=30),
        )


async def _claims(stack: RewardsStack, customer: str, merchant: str, n: int) -> None:
    for i in range(n):
        await stack.execute(
            "INSERT INTO guarantee_claims (claim_id, customer_id, merchant_id, order_id,"
            " promise_kind, measured_value, measured_unit, filed_at, status, explanation)"
            " VALUES (:id, :c, :m, :o, 'dish_wait_time', 900, 'seconds', :at, 'in_review', 'x')",
            id=uuid.uuid4(),
            c=customer,
            m=merchant,
            o=f"o-{merchant}-{i}",
            at=NOW - timedelta(days=2, hours=i // 2),
        )


async def _held(stack: RewardsStack, n: int) -> None:
    for i in range(n):
        await stack.execute(
            "INSERT INTO breaches (breach_key, customer_id, merchant_id, order_id, promise_kind,"
            " currency, order_amount_minor, worst_value, worst_unit, tier, vouchers, points,"
            " refund_minor, first_seen_at, updated_at) VALUES (:b, 'c1', :m, :o,"
            " 'dish_wait_time', 'EUR', 1000, 900, 'seconds', 1, '{}', 0, 100, :at, :at)",
            b=f"o-{i}#dish_wait_time",
            m=BISTRO,
            o=f"o-{i}",
            at=NOW,
        )
        await stack.execute(
            "INSERT INTO compensations (compensation_id, breach_key, tier, customer_id,"
            " merchant_id, order_id, promise_kind, vouchers, points, refund_minor, currency,"
            " new_breach, status, trigger, trigger_ref, review_reasons, created_at)"
            " VALUES (:id, :b, 1, 'c1', :m, :o, 'dish_wait_time', '{}', 0, 100, 'EUR', true,"
            " 'in_review', 'incident', :ref, '{customer_refund_cap}', :at)",
            id=uuid.uuid4(),
            b=f"o-{i}#dish_wait_time",
            m=BISTRO,
            o=f"o-{i}",
            ref=f"incident:{i}",
            at=NOW - timedelta(hours=i // 4),
        )


async def test_every_list_route_walks_every_item_exactly_once(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await _vouchers(stack, "ann", BISTRO, 7)
        await _vouchers(stack, "ann", None, 6)
        await _claims(stack, "ann", BISTRO, 5)
        await _held(stack, 9)
        async with serving(stack, infra, workers=False, clock=lambda: NOW) as client:
            for i in range(7):
                await client.put(
                    f"/v1/admin/reward-definitions/r-{i}", json={"title": "T", "valid_days": 5}
                )
                await client.put(
                    f"/v1/admin/milestone-rules/rule-{i}",
                    json={
                        "kind": "every_lifetime_points",
                        "every_points": 100 + i,
                        "grant_points": 5,
                    },
                )
                start = (NOW - timedelta(days=1)).isoformat()
                end = (NOW + timedelta(days=1)).isoformat()
                item = {
                    "reward_code": "coffee",
                    "title": "Coffee",
                    "points_cost": 10,
                    "claimable_from": start,
                    "claimable_until": end,
                    "voucher_valid_days": 5,
                }
                assert (await client.put(f"/v1/admin/catalogue/i-{i}", json=item)).is_success
                assert (await client.put(f"/v1/admin/limits/m-{i}", json={})).is_success
                policy = {"unit": "minutes", "tiers": [{"over": 10, "points": 5}]}
                kind = ["dish_wait_time", "check_in_time"][i % 2]
                assert (
                    await client.put(f"/v1/admin/policies/m-{i // 2}/{kind}", json=policy)
                ).is_success
            rewards, pages = await _walk(client, "/v1/customers/ann/rewards", "vouchers", 2)
            assert pages >= 7, "13 vouchers at 2 a page take 7 pages"
            ids = [v["voucher_id"] for v in rewards]
            assert len(ids) == 13 and len(set(ids)) == 13, "every voucher once"
            times = [v["issued_at"] for v in rewards]
            assert times == sorted(times, reverse=True), "newest first across pages"
            claims, _ = await _walk(client, "/v1/customers/ann/rewards", "guarantee_claims", 2)
            assert len(claims) == 5 and len(set(claims)) == 5, "every guarantee claim once"
            reviews, _ = await _walk(client, "/v1/admin/reviews", "reviews", 4)
            assert len({r["compensation_id"] for r in reviews}) == len(reviews) == 9
            created = [r["created_at"] for r in reviews]
            assert created == sorted(created), "oldest held compensation first"
            overdue, _ = await _walk(client, "/v1/admin/reports/overdue-claims", "claims", 2)
            assert len({c["claim_id"] for c in overdue}) == len(overdue) == 5
            budgets, pages = await _walk(client, "/v1/admin/reports/budgets", "merchants", 3)
            merchants = [line["merchant_id"] for line in budgets]
            assert merchants == sorted({*(f"m-{i}" for i in range(7)), BISTRO}), merchants
            assert pages == 3
            for path, key, table in [
                ("/v1/admin/reward-definitions", "rewards", "reward_definitions"),
                ("/v1/admin/milestone-rules", "rules", "milestone_rules"),
                ("/v1/admin/catalogue", "items", "catalogue_items"),
                ("/v1/catalogue", "items", "catalogue_items"),
                ("/v1/admin/policies", "policies", "guarantee_policies"),
            ]:
                expected = await stack.scalar(f"SELECT count(*) FROM {table}")  # seeds included
                assert expected >= 7
                items, pages = await _walk(client, path, key, 3)
                assert len(items) == expected, f"{path}: {len(items)} of {expected}"
                assert pages == -(-expected // 3), f"{path}: {pages} pages"
                assert len({str(sorted(i.items())) for i in items}) == expected, f"{path} repeats"


async def test_the_default_page_holds_what_the_old_cap_held_and_says_when_there_is_more(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """Reviews used to stop at 200 without a word; the 201st now comes with a cursor."""
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await _held(stack, 201)
        async with serving(stack, infra, workers=False, clock=lambda: NOW) as client:
            first = (await client.get("/v1/admin/reviews")).json()
            assert len(first["reviews"]) == 200
            assert first["next_cursor"] is not None, "a 201st held compensation is announced"
            rest = (
                await client.get("/v1/admin/reviews", params={"cursor": first["next_cursor"]})
            ).json()
            assert len(rest["reviews"]) == 1 and rest["next_cursor"] is None


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'{"after": 5}').decode(),
        base64.urlsafe_b64encode(b'{"created_at": "yesterday", "compensation_id": "x"}').decode(),
        base64.urlsafe_b64encode(
            b'{"vouchers": ["2026-01-01T00:00:00", "nope"], "claims": null}'
        ).decode(),
    ],
)
async def test_a_cursor_the_api_did_not_issue_is_a_422_naming_cursor(
    infra: Infra, rewards_db: str, unique: str, cursor: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        async with serving(stack, infra, workers=False, clock=lambda: NOW) as client:
            for path in (
                "/v1/customers/ann/rewards",
                "/v1/admin/reviews",
                "/v1/admin/catalogue",
                "/v1/catalogue",
                "/v1/admin/policies",
                "/v1/admin/milestone-rules",
                "/v1/admin/reward-definitions",
                "/v1/admin/reports/overdue-claims",
                "/v1/admin/reports/budgets",
            ):
                answer = await client.get(path, params={"cursor": cursor})
                assert answer.status_code == 422, (path, answer.text)
                assert answer.headers["content-type"].startswith("application/problem+json")
                assert "cursor" in answer.text, f"{path}: the problem names the cursor"


async def test_a_merchant_bound_key_pages_through_its_merchant_only(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await _vouchers(stack, "ann", BISTRO, 5)
        await _vouchers(stack, "ann", GRILL, 5)
        await _claims(stack, "ann", BISTRO, 3)
        await _claims(stack, "ann", GRILL, 3)
        async with stack.engine.begin() as conn:
            key = await create_key(conn, "bistro-app", ["rewards:read"], merchant_id=BISTRO)
        bistro = {"Authorization": f"Bearer {key.plaintext}"}
        async with serving(stack, infra, workers=False, clock=lambda: NOW) as client:
            vouchers, _ = await _walk(client, "/v1/customers/ann/rewards", "vouchers", 2, bistro)
            claims, _ = await _walk(
                client, "/v1/customers/ann/rewards", "guarantee_claims", 2, bistro
            )
            everything, _ = await _walk(client, "/v1/customers/ann/rewards", "vouchers", 2)
            # The admin's cursor handed to the bound key still shows only the bistro's.
            first = await client.get("/v1/customers/ann/rewards", params={"limit": 1})
            handed = await client.get(
                "/v1/customers/ann/rewards",
                params={"limit": 50, "cursor": first.json()["next_cursor"]},
                headers=bistro,
            )
        assert len(vouchers) == 5 and {v["merchant_id"] for v in vouchers} == {BISTRO}
        assert len(claims) == 3
        assert len(everything) == 10, "the unbound key sees both merchants' vouchers"
        assert handed.status_code == 200
        assert {v["merchant_id"] for v in handed.json()["vouchers"]} <= {BISTRO}
        filed = await stack.rows(
            "SELECT claim_id::text AS id FROM guarantee_claims WHERE merchant_id = :m", m=BISTRO
        )
        assert set(claims) == {row.id for row in filed}, "only the bistro's claims"


async def test_the_invariant_report_says_which_checks_it_cut(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """It lists `limit` rows per invariant, as before, but no longer drops the rest silently."""
    async with rewards_stack(infra, rewards_db, unique) as stack:
        for i in range(3):  # redeemed at another merchant: voucher_redeemed_invalidly
            await stack.execute(
                "INSERT INTO vouchers (voucher_id, code, customer_id, reward_code, origin,"
                " origin_ref, merchant_id, issued_at, expires_at, redeemed_at, redeemed_by)"
                " VALUES (:id, :code, 'ann', 'coffee', 'milestone', :ref, 'm2', :at, :until,"
                " :at, 'm1')",
                id=uuid.uuid4(),
                code=new_voucher_code(),
                ref=f"invalid:{i}",
                at=NOW - timedelta(days=1),
                until=NOW + timedelta(days=1),
            )
        async with serving(stack, infra, workers=False, clock=lambda: NOW) as client:
            cut = (await client.get("/v1/admin/invariants", params={"limit": 2})).json()
            whole = (await client.get("/v1/admin/invariants", params={"limit": 3})).json()
            default = (await client.get("/v1/admin/invariants")).json()
    assert len(cut["violations"]) == 2 and cut["truncated"] == ["voucher_redeemed_invalidly"]
    assert len(whole["violations"]) == 3 and whole["truncated"] == []
    assert len(default["violations"]) == 3 and not default["ok"]
