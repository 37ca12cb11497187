"""End to end, with clients none of our code wrote: purchases go in through librdkafka
(confluent-kafka) and a partner app works over HTTP.

The points and rewards services judge time by the wall clock, so the purchases and the
catalogue window are dated relative to it when the test starts; the customer and the
merchant are the test's own. Nothing here depends on what other tests did before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.e2e.clients import eventually, fresh_id, publish_with_librdkafka, purchase
from tests.e2e.conftest import System


def test_a_partner_app_reads_points_claims_a_reward_redeems_it_and_files_a_claim(
    system: System,
) -> None:
    customer, bistro = fresh_id("p"), fresh_id("m-e2e-bistro")
    now = datetime.now(UTC).replace(microsecond=0)
    recent_order = f"o-{customer}-3"
    publish_with_librdkafka(
        system.bootstrap_servers,
        [
            purchase(customer, bistro, f"o-{customer}-1", now - timedelta(days=30), "300.00"),
            purchase(customer, bistro, f"o-{customer}-2", now - timedelta(days=20), "300.00"),
            purchase(customer, bistro, recent_order, now - timedelta(hours=2), "50.00"),
        ],
    )
    points, rewards = system.urls["points"], system.urls["rewards"]
    with httpx.Client(timeout=10) as http:

        def account() -> dict[str, Any]:
            answer = http.get(
                f"{points}/v1/customers/{customer}/balance", headers=system.headers("points")
            )
            answer.raise_for_status()
            return dict(answer.json())

        def earned() -> dict[str, Any] | None:
            body = account()
            return body if body["purchase_count"] == 3 and body["available"] >= 500 else None

        before = eventually(earned, "three purchases becoming redeemable points")

        item = f"e2e-dinner-{customer}"
        answer = http.put(
            f"{rewards}/v1/admin/catalogue/{item}",
            headers=system.headers("rewards"),
            json={
                "reward_code": "free-dessert",
                "title": "A free dessert",
                "points_cost": 200,
                "claimable_from": (now - timedelta(days=1)).isoformat(),
                "claimable_until": (now + timedelta(days=30)).isoformat(),
                "voucher_valid_days": 30,
            },
        )
        assert answer.status_code == 200, answer.text

        def projected() -> bool | None:
            answer = http.get(
                f"{rewards}/v1/customers/{customer}/rewards", headers=system.headers("rewards")
            )
            view = answer.json()["points"] if answer.status_code == 200 else None
            return True if view and view["available"] >= 200 else None

        eventually(projected, "the rewards service learning the customer's points")

        claim = http.post(
            f"{rewards}/v1/customers/{customer}/claims",
            headers=system.headers("rewards"),
            json={"item_id": item, "idempotency_key": f"e2e-{customer}"},
        )
        assert claim.status_code in (201, 202), claim.text
        location = f"{rewards}{claim.headers['Location']}"

        def issued() -> dict[str, Any] | None:
            view = http.get(location, headers=system.headers("rewards")).json()
            return view if view["settled"] else None

        settled = eventually(issued, "the catalogue claim being settled")
        assert settled["state"] == "issued", f"the claim was not fulfilled: {settled}"
        code = settled["voucher"]["code"]

        redeemed = http.post(
            f"{rewards}/v1/vouchers/{code}/redeem",
            headers=system.headers("rewards"),
            json={"merchant_id": bistro},
        )
        assert redeemed.status_code == 200, redeemed.text
        again = http.post(
            f"{rewards}/v1/vouchers/{code}/redeem",
            headers=system.headers("rewards"),
            json={"merchant_id": bistro},
        )
        assert again.status_code == 409, "a voucher must be redeemable once only"
        assert again.headers["content-type"].startswith("application/problem+json")

        def spent() -> dict[str, Any] | None:
            body = account()
            return body if body["available"] == before["available"] - 200 else None

        eventually(spent, "the claim's 200 points leaving the balance")

        policy = http.put(
            f"{rewards}/v1/admin/policies/{bistro}/dish_wait_time",
            headers=system.headers("rewards"),
            json={"unit": "minutes", "tiers": [{"over": 10, "points": 150}]},
        )
        assert policy.status_code == 200, policy.text
        filed = http.post(
            f"{rewards}/v1/customers/{customer}/guarantee-claims",
            headers=system.headers("rewards"),
            json={
                "merchant_id": bistro,
                "order_id": recent_order,
                "promise_kind": "dish_wait_time",
                "measured": {"value": "17", "unit": "minutes"},
                "order_amount": "50.00",
                "currency": "EUR",
            },
        )
        assert filed.status_code == 201, filed.text
        assert filed.json()["status"] not in ("rejected", "in_review"), filed.text

        def compensated() -> dict[str, Any] | None:
            body = account()
            expected = before["lifetime_earned"] + 150
            return body if body["lifetime_earned"] == expected else None

        eventually(compensated, "the missed promise's 150 points reaching the customer")
