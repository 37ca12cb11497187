"""GET /v1/admin/invariants: sound books report nothing; rows broken by hand (SQL, as a bug
or an operator might) are each reported under the invariant they break."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.integration.rewards.helpers import (
    NOW,
    RESTAURANT,
    RewardsStack,
    days_ago,
    incident,
    purchase,
    rewards_stack,
    serving,
)
from tests.integration.rewards.points_book import PointsBook
from tests.support.counting import publish, wait_until
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

ITEM = (
    "INSERT INTO catalogue_items (item_id, reward_code, title, points_cost, claimable_from,"
    " claimable_until, voucher_valid_days, total_stock, units_claimed) VALUES"
    " (:item, 'tea', 'Tea', 40, :start, :end, 30, 5, :units)"
)
CLAIM = (
    "INSERT INTO catalogue_claims (claim_id, item_id, customer_id, points, merchant_id, state,"
    " voucher_id, created_at, updated_at) VALUES"
    " (:claim, :item, 'una', 40, 'rewards', :state, :voucher, :at, :at)"
)
VOUCHER = (
    "INSERT INTO vouchers (voucher_id, code, customer_id, reward_code, origin, origin_ref,"
    " merchant_id, issued_at, expires_at) VALUES"
    " (:voucher, :code, 'una', 'tea', 'catalogue', :ref, :merchant, :at, :expires)"
)


async def _catalogue(stack: RewardsStack, item: str, state: str, units: int) -> dict[str, Any]:
    """An item with one claim in `state` (issued ones with their voucher), as the saga leaves it."""
    ids = {"claim": str(uuid.uuid4()), "voucher": str(uuid.uuid4()), "item": item}
    window = {"start": days_ago(10), "end": NOW + timedelta(days=9)}
    await stack.execute(ITEM, item=item, units=units, **window)
    voucher = ids["voucher"] if state == "issued" else None
    if voucher is not None:
        await stack.execute(
            VOUCHER,
            voucher=voucher,
            code=f"CODE{item.upper()}",
            ref=f"claim:{ids['claim']}",
            merchant="cafe",
            at=days_ago(3),
            expires=NOW + timedelta(days=20),
        )
    claim = {"claim": ids["claim"], "item": item, "state": state, "voucher": voucher}
    await stack.execute(CLAIM, **claim, at=days_ago(3))
    return ids


async def test_sound_books_report_nothing_and_each_broken_row_is_named(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await stack.execute(  # caps far above this test's amounts
            "INSERT INTO merchant_limits (merchant_id, customer_refund_cap_minor) VALUES (:m, :c)",
            m=RESTAURANT,
            c=10**9,
        )
        await publish(infra.bootstrap_servers, stack.purchases, [purchase("una", "o-1")])
        incidents = [incident("una", "o-1", "16"), incident("una", "o-1", "25")]
        await publish(infra.bootstrap_servers, stack.incidents, incidents)
        async with stack.consumer():
            await stack.wait_handled(3)
        issued = await _catalogue(stack, "tea1", "issued", 1)
        cancelled = await _catalogue(stack, "tea2", "compensated", 0)
        async with serving(stack, infra, workers=False) as client:
            sound = (await client.get("/v1/admin/invariants")).json()
            assert sound["ok"] is True and sound["violations"] == [], sound
            assert len(sound["checked"]) == 8
            # Break the books, one invariant at a time.
            oversold = "UPDATE catalogue_items SET units_claimed = 2 WHERE item_id = 'tea2'"
            await stack.execute(oversold)
            await stack.execute(
                VOUCHER,
                voucher=cancelled["voucher"],
                code="CODETEA2",
                ref=f"claim:{cancelled['claim']}",
                merchant=None,
                at=days_ago(1),
                expires=NOW + timedelta(days=20),
            )
            await stack.execute(
                "UPDATE vouchers SET redeemed_at = :at, redeemed_by = 'elsewhere'"
                " WHERE voucher_id = :voucher",
                at=days_ago(1),
                voucher=issued["voucher"],
            )
            await stack.execute(
                "UPDATE compensations SET refund_minor = refund_minor + 1 WHERE tier = 3"
            )
            await stack.execute("UPDATE orders SET amount_minor = 7999")  # below what was judged
            await stack.execute(
                "UPDATE catalogue_claims SET state = 'points_debited', voucher_id = NULL,"
                " updated_at = :at WHERE claim_id = :claim",
                at=days_ago(2),
                claim=issued["claim"],
            )
            broken = (await client.get("/v1/admin/invariants")).json()
        assert broken["ok"] is False
        found = {(v["invariant"], v["subject"]) for v in broken["violations"]}
        breach = await stack.scalar("SELECT breach_key FROM breaches")
        assert found == {
            ("stock_count_mismatch", "tea2"),
            ("catalogue_voucher_without_issued_claim", cancelled["voucher"]),
            ("catalogue_voucher_without_issued_claim", issued["voucher"]),
            ("voucher_redeemed_invalidly", issued["voucher"]),
            ("claim_unsettled_after_debit", issued["claim"]),
            ("breach_total_mismatch", breach),
            ("paid_above_top_tier", breach),
            ("compensation_off_record", breach),
        }, broken["violations"]
        above = next(v for v in broken["violations"] if v["invariant"] == "paid_above_top_tier")
        assert above["detail"] == {"paid_minor": 16001, "top_tier_minor": 16000}


async def _issued_claim(
    client: httpx.AsyncClient, stack: RewardsStack, infra: Infra, una: PointsBook
) -> dict[str, Any]:
    """A claim answered by a `points.debited` (published as the points service would)."""
    window = {
        "claimable_from": days_ago(1).isoformat(),
        "claimable_until": (NOW + timedelta(days=9)).isoformat(),
    }
    item = {"reward_code": "tea", "title": "Tea", "points_cost": 40, "voucher_valid_days": 30}
    put = await client.put("/v1/admin/catalogue/tea", json={**item, **window, "total_stock": 5})
    assert put.status_code == 200, put.text
    claimed = await client.post("/v1/customers/una/claims", json={"item_id": "tea"})
    assert claimed.status_code == 202, claimed.text
    claim_id = claimed.json()["claim_id"]
    redemption = str(uuid.uuid4())
    await publish(
        infra.bootstrap_servers, stack.points_topic, [una.debit(claim_id, 40, redemption)]
    )

    async def issued() -> object:
        view = (await client.get(f"/v1/claims/{claim_id}")).json()
        return True if view["state"] == "issued" else f"claim is {view['state']}"

    await wait_until(issued, timeout=30)
    view = (await client.get(f"/v1/claims/{claim_id}")).json()
    return {"claim": claim_id, "redemption": redemption, "voucher": view["voucher"]}


async def test_a_claims_points_given_back_outside_the_saga_are_reported(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        una = PointsBook("una")
        funded = [una.buy("una-1", 100), una.settle("una-1")]
        await publish(infra.bootstrap_servers, stack.points_topic, funded)
        async with serving(stack, infra) as client:
            await stack.wait_handled(2)
            claim = await _issued_claim(client, stack, infra, una)
            sound = (await client.get("/v1/admin/invariants")).json()
            assert sound["violations"] == [], "an issued claim with its debit in place is sound"
            unrelated = una.cancel_redemption(str(uuid.uuid4()), 10, merchant="cafe")
            taken_back = una.cancel_redemption(claim["redemption"], 40)
            await publish(infra.bootstrap_servers, stack.points_topic, [unrelated, taken_back])
            await stack.wait_handled(5)
            active = (await client.get("/v1/admin/invariants")).json()
            code = claim["voucher"]["code"]
            redeemed = await client.post(f"/v1/vouchers/{code}/redeem", json={"merchant_id": "x"})
            assert redeemed.status_code == 200, redeemed.text
            after_redeem = (await client.get("/v1/admin/invariants")).json()
        for report in (active, after_redeem):
            assert report["ok"] is False
            found = [(v["invariant"], v["subject"]) for v in report["violations"]]
            assert found == [("catalogue_voucher_points_returned", claim["voucher"]["voucher_id"])]
            detail = report["violations"][0]["detail"]
            assert detail["claim_id"] == claim["claim"], detail
            assert detail["redemption_id"] == claim["redemption"], detail
            assert detail["points_returned"] == 40, detail
        assert after_redeem["violations"][0]["detail"]["redeemed_at"] is not None
