"""GET /v1/admin/invariants: sound books report nothing; rows broken by hand (SQL, as a bug
or an operator might) are each reported under the invariant they break."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

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
from tests.support.counting import publish
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
            assert len(sound["checked"]) == 7
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
