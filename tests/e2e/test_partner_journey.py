"""End to end, with clients none of our code wrote: purchases go in through librdkafka
(confluent-kafka), a partner app works over HTTP, operations read loyalty.alerts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from confluent_kafka import Consumer, Producer

from tests.e2e.conftest import System

T = TypeVar("T")
NOW = datetime.now(UTC).replace(microsecond=0)
BISTRO = "m-e2e-bistro"


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 90) -> T:
    """Poll `probe` until it returns something; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            found = probe()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            found, last = None, exc
        if found is not None:
            return found
        time.sleep(0.25)
    pytest.fail(f"{what} did not happen within {timeout:g}s (last: {last!r})")


def purchase(customer: str, order: str, at: datetime, amount: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "purchase.completed",
        "version": 1,
        "occurred_at": at.isoformat(),
        "source": "e2e-till",
        "customer_id": customer,
        "data": {
            "order_id": order,
            "merchant_id": BISTRO,
            "store_id": "s-e2e-1",
            "amount": amount,
            "currency": "EUR",
            "items": [
                {"sku": "menu-1", "category": "restaurant", "quantity": 1, "unit_price": amount}
            ],
        },
    }


def publish_with_librdkafka(bootstrap: str, events: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for event in events:
        producer.produce(
            "pos.purchases",
            orjson.dumps(event),
            key=event["customer_id"].encode(),
            on_delivery=delivered,
        )
    assert producer.flush(30) == 0, "librdkafka could not deliver every purchase"
    assert not failures, f"the broker refused purchases: {failures}"


# The lapse test runs first: the alerts service's event clock only moves forward, and the
# partner journey below publishes purchases dated today.


def _alerts_for(consumer: Consumer, customer: str, timeout: float) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            if found:
                break
            continue
        event = orjson.loads(message.value())
        if event["customer_id"] == customer and event["type"].startswith("alert."):
            found.append(event)
    return found


def test_a_weekly_customer_who_stops_coming_raises_a_lapse_alert_after_a_time_jump(
    system: System,
) -> None:
    regular = f"l-{uuid.uuid4().hex[:8]}"
    weeks_ago = [NOW - timedelta(days=90 - 7 * i) for i in range(4)]
    publish_with_librdkafka(
        system.bootstrap_servers,
        [purchase(regular, f"o-{regular}-{i}", at, "40.00") for i, at in enumerate(weeks_ago)],
    )
    alerts = system.urls["alerts"]
    with httpx.Client(timeout=10) as http:

        def seen() -> bool | None:
            answer = http.get(
                f"{alerts}/v1/customers/{regular}/activity", headers=system.headers("alerts")
            )
            body = answer.json() if answer.status_code == 200 else None
            return True if body and body["summary"]["purchase_count"] == 4 else None

        eventually(seen, "the alerts service recording the weekly visits")

    consumer = Consumer(
        {
            "bootstrap.servers": system.bootstrap_servers,
            "group.id": f"e2e-ops-{regular}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(["loyalty.alerts"])
    try:
        assert not _alerts_for(consumer, regular, timeout=3), (
            "no lapse alert may be raised while event time has not moved on"
        )
        jump = f"j-{uuid.uuid4().hex[:8]}"  # someone else buys today: event time jumps 69 days
        publish_with_librdkafka(
            system.bootstrap_servers,
            [purchase(jump, f"o-{jump}-1", NOW - timedelta(hours=3), "10.00")],
        )
        raised = _alerts_for(consumer, regular, timeout=90)
    finally:
        consumer.close()
    assert raised, "a weekly customer silent for two months must raise a lapse alert"
    first = raised[0]
    assert first["type"] == "alert.raised"
    assert first["data"]["kind"] == "lapse"
    assert first["data"]["days_since_last_purchase"] >= 21
    assert first["data"]["reason"], "an alert must say why, for the person who reaches out"


def test_a_partner_app_reads_points_claims_a_reward_redeems_it_and_files_a_claim(
    system: System,
) -> None:
    customer = f"p-{uuid.uuid4().hex[:8]}"
    recent_order = f"o-{customer}-3"
    publish_with_librdkafka(
        system.bootstrap_servers,
        [
            purchase(customer, f"o-{customer}-1", NOW - timedelta(days=30), "300.00"),
            purchase(customer, f"o-{customer}-2", NOW - timedelta(days=20), "300.00"),
            purchase(customer, recent_order, NOW - timedelta(hours=2), "50.00"),
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
                "claimable_from": (NOW - timedelta(days=1)).isoformat(),
                "claimable_until": (NOW + timedelta(days=30)).isoformat(),
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
            json={"merchant_id": BISTRO},
        )
        assert redeemed.status_code == 200, redeemed.text
        again = http.post(
            f"{rewards}/v1/vouchers/{code}/redeem",
            headers=system.headers("rewards"),
            json={"merchant_id": BISTRO},
        )
        assert again.status_code == 409, "a voucher must be redeemable once only"
        assert again.headers["content-type"].startswith("application/problem+json")

        def spent() -> dict[str, Any] | None:
            body = account()
            return body if body["available"] == before["available"] - 200 else None

        eventually(spent, "the claim's 200 points leaving the balance")

        policy = http.put(
            f"{rewards}/v1/admin/policies/{BISTRO}/dish_wait_time",
            headers=system.headers("rewards"),
            json={"unit": "minutes", "tiers": [{"over": 10, "points": 150}]},
        )
        assert policy.status_code == 200, policy.text
        filed = http.post(
            f"{rewards}/v1/customers/{customer}/guarantee-claims",
            headers=system.headers("rewards"),
            json={
                "merchant_id": BISTRO,
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
