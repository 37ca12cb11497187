"""The console in headless chromium against the whole system `make run` starts.

Five journeys a person makes, each with its own fresh customers and merchants, and each
checked through the services' own APIs afterwards (the console must have really done it):
acknowledge an alert, approve a held compensation, open a customer, replay a dead letter,
and a merchant-bound key refused another merchant's customer.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from confluent_kafka import Producer
from playwright.sync_api import Page, expect

from tests.e2e.clients import (
    alerts_now,
    eventually,
    fresh_id,
    publish_with_librdkafka,
    purchase,
)
from tests.e2e.conftest import System
from tests.e2e.console.conftest import admin_keys, console_url, merchant_key, sign_in
from tooling.run import LOCAL_KEY_NAME


def _get(system: System, service: str, path: str, **params: Any) -> Any:
    answer = httpx.get(
        system.urls[service] + path, params=params, headers=system.headers(service), timeout=10
    )
    return answer.json() if answer.status_code == 200 else None


def _put(system: System, service: str, path: str, body: dict[str, Any]) -> None:
    answer = httpx.put(
        system.urls[service] + path, json=body, headers=system.headers(service), timeout=10
    )
    assert answer.status_code < 300, f"PUT {path}: {answer.status_code} {answer.text}"


def _publish(system: System, topic: str, events: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": system.bootstrap_servers, "acks": "all"})
    for event in events:
        producer.produce(topic, orjson.dumps(event), key=event["customer_id"].encode())
    assert producer.flush(30) == 0, f"could not publish to {topic}"


def test_sign_in_then_acknowledge_an_alert_with_a_note(page: Page, system: System) -> None:
    regular, merchant = fresh_id("ca"), fresh_id("m-console")
    with httpx.Client(timeout=10) as http:
        start = max(alerts_now(system, http), datetime.now(UTC)) + timedelta(days=1)
    visits = [start + timedelta(weeks=i) for i in range(4)]
    jump = fresh_id("cj")
    publish_with_librdkafka(
        system.bootstrap_servers,
        [
            purchase(regular, merchant, f"o-{regular}-{i}", at, "40.00")
            for i, at in enumerate(visits)
        ],
    )
    eventually(
        lambda: (
            (_get(system, "alerts", f"/v1/customers/{regular}/activity") or {})
            .get("summary", {})
            .get("purchase_count")
            == 4
            or None
        ),
        "the alerts service recording the weekly visits",
    )
    publish_with_librdkafka(
        system.bootstrap_servers,
        [purchase(jump, merchant, f"o-{jump}", visits[-1] + timedelta(days=69), "10.00")],
    )
    eventually(
        lambda: _get(system, "alerts", "/v1/alerts", merchant=merchant)["items"] or None,
        "a lapse alert for the silent weekly customer",
    )

    sign_in(page, system, "Ada Ops", admin_keys(system))
    expect(page.locator(".flash")).to_contain_text("Signed in as Ada Ops")
    page.goto(console_url(system) + f"/alerts?merchant={merchant}")
    row = page.locator("tr", has=page.locator(f"a:text-is('{regular}')"))
    expect(row).to_contain_text("usually buys every")  # the reason in words
    row.locator("input[name=note]").fill("called her, she moved house")
    row.locator("button:text('Acknowledge')").click()
    expect(page.locator(".flash")).to_contain_text(f"Alert for {regular} acknowledged")

    alert = _get(system, "alerts", "/v1/alerts", merchant=merchant)["items"][0]
    # The service records the key that acted; the name typed at sign-in is kept beside it.
    assert alert["acknowledgement"]["by"] == LOCAL_KEY_NAME
    assert alert["acknowledgement"]["claimed_by"] == "Ada Ops"
    assert alert["acknowledgement"]["note"] == "called her, she moved house"
    for key in admin_keys(system):  # keys stay on the server: never in a page or its URL
        assert key not in page.url and key not in page.content()


def test_approve_a_compensation_held_over_a_cap(page: Page, system: System) -> None:
    customer, merchant = fresh_id("cc"), fresh_id("m-console-diner")
    _put(
        system,
        "rewards",
        f"/v1/admin/policies/{merchant}/dish_wait_time",
        {"unit": "minutes", "tiers": [{"over": 10, "points": 120}]},
    )
    _put(system, "rewards", f"/v1/admin/limits/{merchant}", {"customer_breach_cap": 0})
    order = fresh_id("o")
    # Rewards pays on the order it recorded, so the till's purchase comes first.
    _publish(
        system,
        "pos.purchases",
        [purchase(customer, merchant, order, datetime.now(UTC) - timedelta(minutes=30), "40.00")],
    )
    incident = {
        "event_id": str(uuid.uuid4()),
        "type": "service.incident",
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "console-test",
        "customer_id": customer,
        "data": {
            "incident_id": fresh_id("i"),
            "merchant_id": merchant,
            "promise_kind": "dish_wait_time",
            "measured": {"value": 25, "unit": "minutes"},
            "order_id": order,
            "order_amount": "40.00",
            "currency": "EUR",
        },
    }
    _publish(system, "ops.service-incidents", [incident])

    def held() -> dict[str, Any] | None:
        queue = _get(system, "rewards", "/v1/admin/reviews")["reviews"]
        return next((r for r in queue if r["customer_id"] == customer), None)

    review = eventually(held, "the compensation held for review")
    sign_in(page, system, "Bo Desk", admin_keys(system))
    page.goto(console_url(system) + "/reviews")
    row = page.locator(f"tr[data-compensation='{review['compensation_id']}']")
    expect(row).to_contain_text("customer_breach_cap")
    expect(row).to_contain_text("120 points")
    row.locator("button:text('Approve')").click()
    expect(page.locator(".flash")).to_contain_text(review["compensation_id"])
    expect(page.locator(f"tr[data-compensation='{review['compensation_id']}']")).to_have_count(0)

    balance = eventually(
        lambda: (
            (
                (b := _get(system, "points", f"/v1/customers/{customer}/balance"))
                and b["available"] == 120
                and b
            )
            or None
        ),  # eventually() keeps polling on None only, not on False
        "the approved 120 points credited by the points service",
    )
    assert balance["available"] == 120

    # The same approval posted again (a double click, a replayed form) pays nothing more:
    # the rewards service refuses it and the console says so.
    token = page.locator("input[name=csrf_token]").first.input_value()
    again = page.request.post(
        console_url(system) + f"/reviews/{review['compensation_id']}/approve",
        form={"csrf_token": token},
        max_redirects=0,
    )
    assert again.status == 409, f"a second approval must be refused, got {again.status}"
    assert "already granted" in again.text() and "already_decided" in again.text()


def test_open_a_customer_with_balance_ledger_and_activity(page: Page, system: System) -> None:
    customer, merchant = fresh_id("cp"), fresh_id("m-console-shop")
    at = datetime.now(UTC) - timedelta(days=20)  # past the 14-day return window: available
    publish_with_librdkafka(
        system.bootstrap_servers, [purchase(customer, merchant, f"o-{customer}", at, "42.00")]
    )
    eventually(
        lambda: _get(system, "points", f"/v1/customers/{customer}/balance"),
        "the points service recording the purchase",
    )
    eventually(
        lambda: _get(system, "alerts", f"/v1/customers/{customer}/activity"),
        "the alerts service recording the purchase",
    )

    sign_in(page, system, "Cy Manager", admin_keys(system))
    page.fill("input[name=id]", customer)
    page.click("button:text('Open')")
    expect(page.locator("h1")).to_have_text(f"Customer {customer}")
    expect(page.locator("#balance")).to_contain_text("42 available")
    expect(page.locator("#ledger")).to_contain_text(f"o-{customer}")
    expect(page.locator("#activity")).to_contain_text("1 purchases")
    page.select_option("select[name=kind]", "redemption")
    page.click("#ledger button:text('Filter')")
    expect(page.locator("#ledger")).to_contain_text("No ledger entry matches")


def test_replay_a_fixed_dead_letter(page: Page, system: System) -> None:
    customer, merchant = fresh_id("cd"), fresh_id("m-console-till")
    bad = purchase(
        customer, merchant, f"o-{customer}", datetime.now(UTC) - timedelta(days=20), "30.00"
    )
    bad["data"]["amount"] = 30  # a JSON number: money must be a decimal string
    _publish(system, "pos.purchases", [bad])

    sign_in(page, system, "Di Ops", admin_keys(system))
    letter = page.locator("article.letter", has_text=bad["event_id"])

    def listed() -> bool | None:
        page.goto(console_url(system) + "/dead-letters?group=points")
        return letter.count() == 1 or None

    eventually(listed, "the dead letter listed in the console")
    fixed = letter.locator("textarea").input_value().replace('"amount": 30,', '"amount": "30.00",')
    assert '"amount": "30.00"' in fixed, "the payload is shown as the consumer received it"
    letter.locator("textarea").fill(fixed)
    letter.locator("button:text('Replay')").click()
    expect(page.locator(".flash")).to_contain_text("Replayed points.dlq")

    balance = eventually(
        lambda: _get(system, "points", f"/v1/customers/{customer}/balance"),
        "the replayed purchase earning its points",
    )
    assert balance["available"] == 30


def test_a_merchant_key_is_refused_another_merchants_customer(page: Page, system: System) -> None:
    ours, theirs = fresh_id("m-console-ours"), fresh_id("m-console-theirs")
    stranger = fresh_id("cs")
    publish_with_librdkafka(
        system.bootstrap_servers,
        [
            purchase(
                stranger, theirs, f"o-{stranger}", datetime.now(UTC) - timedelta(days=2), "15.00"
            )
        ],
    )
    eventually(
        lambda: _get(system, "alerts", f"/v1/customers/{stranger}/activity"),
        "the alerts service knowing the other merchant's customer",
    )
    keys = [
        merchant_key(system, "alerts", "alerts:read", ours),
        merchant_key(system, "points", "points:read", ours),
        merchant_key(system, "rewards", "rewards:read", ours),
    ]

    sign_in(page, system, "Ed Store", keys)
    expect(page.locator(".flash")).to_contain_text("Signed in as Ed Store")
    page.goto(console_url(system) + f"/customers/{stranger}")
    expect(page.locator("#refusal")).to_contain_text("has not bought at the merchant")
    assert page.locator("#balance").count() == 0, "no figure of their customer may show"
    page.goto(console_url(system) + f"/alerts?merchant={theirs}")
    expect(page.locator("#refusal")).to_contain_text("bound to another merchant")
    page.goto(console_url(system) + "/reviews")  # held compensations are for admins only
    expect(page.locator("#refusal")).to_contain_text("the rewards service answered 403")
    page.goto(console_url(system) + "/dead-letters?group=points")
    expect(page.locator(".refused")).to_contain_text("need an admin key of the points service")


def test_forms_without_the_csrf_token_are_refused_and_keys_stay_out_of_logs(
    system: System,
) -> None:
    with httpx.Client(base_url=console_url(system), timeout=30) as http:
        token = http.get("/signin").text.split('name="csrf_token" value="')[1].split('"')[0]
        forged = http.post("/signin", data={"name": "Mallory", "keys": system.keys["alerts"]})
        assert forged.status_code == 403, "a sign-in without the form's CSRF token must fail"
        signed = http.post(
            "/signin",
            data={"csrf_token": token, "name": "Fay", "keys": "\n".join(admin_keys(system))},
        )
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        alert_id = uuid.uuid4()
        refused = http.post(f"/alerts/{alert_id}/ack", data={"note": "no token"})
        assert refused.status_code == 403, "an acknowledgement without a CSRF token must fail"
        assert http.get("/alerts").status_code == 200, "the session is still signed in"
        bad_segment = http.get("/alerts", params={"segment": "Z"})
        assert bad_segment.status_code == 422 and "segment" in bad_segment.text
        bad_id = http.get("/customers", params={"id": "not an id"})
        assert bad_id.status_code == 422 and "customer id" in bad_id.text
        fresh = http.get("/alerts").text.split('name="csrf_token" value="')[1].split('"')[0]
        assert fresh != token, "signing in must replace the anonymous session's CSRF token"
        bad_review = http.post("/reviews/not-a-uuid/approve", data={"csrf_token": fresh})
        assert bad_review.status_code == 422 and "compensation_id" in bad_review.text
        cookie = http.cookies.get("loyalty_console") or ""
        assert all(key not in cookie for key in admin_keys(system)), "no key in the cookie"
    log = (system.var_dir / "logs" / "console.log").read_text()
    assert "GET /alerts" in log, "the console's log is where its requests are written"
    assert all(key not in log for key in admin_keys(system)), "an API key reached the log"
