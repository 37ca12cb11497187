"""The alerts HTTP API on the real database, with purchases driven through Kafka."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.alerts.clock.service import EventTimeClock, FixedClock
from tests.integration.alerts.conftest import (
    AlertsHarness,
    api_client,
    day,
    every,
    make_keys,
    problem,
    shopping,
)

pytestmark = pytest.mark.integration

SCAN = day(28 + 22)


def weekly(customer: str, amount: str, merchant: str) -> list[dict[str, Any]]:
    """Five weekly visits, the last on day 28, each for `amount` at `merchant`."""
    events = every(customer, days=7, visits=5, last=28)
    for event in events:
        event["data"].update(amount=amount, merchant_id=merchant)
        event["data"]["items"][0]["unit_price"] = amount
    return events


async def _four_alerts(harness: AlertsHarness, unique: str) -> dict[str, str]:
    """Four silent weekly shoppers (two tie on value at risk) and one who kept coming."""
    names = {n: f"{n}-{unique}" for n in ("big", "tie1", "tie2", "small", "regular")}
    await harness.publish(weekly(names["big"], "60.00", "m1"))
    await harness.publish(weekly(names["tie1"], "40.00", "m2"))
    await harness.publish(weekly(names["tie2"], "40.00", "m2"))
    await harness.publish(weekly(names["small"], "20.00", "m1"))
    await harness.publish(
        [*weekly(names["regular"], "30.00", "m1"), shopping(names["regular"], day(45))]
    )
    await harness.settled()
    assert (await harness.scan(SCAN)).raised == 4
    return names


async def _all_pages(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[Any]:
    items, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/alerts", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_alerts_are_ranked_by_value_at_risk_paged_filtered_and_scoped(
    harness: AlertsHarness, unique: str
) -> None:
    names = await _four_alerts(harness, unique)
    async with api_client(harness.infra, harness.db_url, FixedClock(SCAN)) as client:
        keys = await make_keys(harness.engine)
        problem(await client.get("/v1/alerts"), 401, "api_key_missing")
        problem(await client.get("/v1/alerts", headers=keys.points_only), 403, "scope_missing")

        paged = await _all_pages(client, keys.reader, limit=1)
        ties = sorted(
            (a["alert_id"], a["customer_id"]) for a in paged if a["value_at_risk"] == "514.29"
        )
        expected = [names["big"], *(c for _, c in ties), names["small"]]
        assert [a["customer_id"] for a in paged] == expected, (
            "alerts must come most value at risk first, ties by alert id, each exactly once"
        )
        assert [a["value_at_risk"] for a in paged] == ["771.43", "514.29", "514.29", "257.14"]
        first = paged[0]
        assert (first["status"], first["rule"], first["currency"], first["open"]) == (
            "at_risk",
            "own_rhythm",
            "EUR",
            True,
        )
        assert first["reason"] == "usually buys every 7 days; last purchase 21 days ago"
        whole = (await client.get("/v1/alerts", headers=keys.reader)).json()
        assert whole["items"] == paged and whole["next_cursor"] is None

        at_m2 = await _all_pages(client, keys.reader, merchant="m2", limit=1)
        assert {a["customer_id"] for a in at_m2} == {names["tie1"], names["tie2"]}
        assert await _all_pages(client, keys.reader, status="lapsed") == []
        segment_a = await _all_pages(client, keys.reader, segment="A")
        assert names["big"] in {a["customer_id"] for a in segment_a}
        assert all(a["segment"] == "A" for a in segment_a)

        bound = await _all_pages(client, keys.bound_m2)
        assert {a["merchant_id"] for a in bound} == {"m2"}, "a bound key sees its merchant only"
        other = await client.get("/v1/alerts", params={"merchant": "m1"}, headers=keys.bound_m2)
        problem(other, 403, "merchant_mismatch")

        bad = await client.get("/v1/alerts", params={"cursor": "not-ours"}, headers=keys.reader)
        errors = problem(bad, 422, "validation_failed")["errors"]
        assert [(e["field"], e["rule"]) for e in errors] == [("query.cursor", "cursor_invalid")]
        wrong = await client.get("/v1/alerts", params={"status": "gone"}, headers=keys.reader)
        assert problem(wrong, 422, "validation_failed")["errors"][0]["field"] == "query.status"


async def test_acknowledging_keeps_the_first_who_when_and_note(
    harness: AlertsHarness, unique: str
) -> None:
    names = await _four_alerts(harness, unique)
    moment = SCAN + timedelta(hours=3)
    async with api_client(harness.infra, harness.db_url, FixedClock(moment)) as client:
        keys = await make_keys(harness.engine)
        alerts = await _all_pages(client, keys.reader)
        big = next(a for a in alerts if a["customer_id"] == names["big"])
        tie = next(a for a in alerts if a["customer_id"] == names["tie1"])
        path = f"/v1/alerts/{big['alert_id']}/ack"

        # The body claims to be the admin; the audit must name the key that really acted.
        body = {"by": "ops admin", "note": "called"}
        done = await client.post(path, json=body, headers=keys.reader)
        assert done.status_code == 200, done.text
        ack = done.json()["acknowledgement"]
        assert (ack["by"], ack["claimed_by"], ack["note"], ack["at"]) == (
            "crm desk",
            "ops admin",
            "called",
            moment.isoformat().replace("+00:00", "Z"),
        ), "the acknowledgement must record the API key's name, the caller's words as a claim"
        again = await client.post(path, json={"by": "Bo", "note": "later"}, headers=keys.reader)
        assert again.status_code == 200 and again.json()["acknowledgement"] == ack, (
            "a repeated acknowledgement must leave the first one as it was"
        )
        stored = await harness.rows(
            "SELECT acknowledged_by, ack_claimed_by, ack_note, acknowledged_at FROM alerts"
            " WHERE alert_id = :a",
            a=uuid.UUID(big["alert_id"]),
        )
        assert [tuple(r.values()) for r in stored] == [("crm desk", "ops admin", "called", moment)]

        pending = await _all_pages(client, keys.reader, acknowledged="false")
        assert big["alert_id"] not in {a["alert_id"] for a in pending} and len(pending) == 3

        foreign = await client.post(path, json={"by": "m2", "note": "x"}, headers=keys.bound_m2)
        problem(foreign, 403, "merchant_mismatch")
        own = f"/v1/alerts/{tie['alert_id']}/ack"
        no_claim = await client.post(own, json={"note": "ok"}, headers=keys.bound_m2)
        assert no_claim.status_code == 200, no_claim.text
        assert no_claim.json()["acknowledgement"]["by"] == "store m2"
        assert no_claim.json()["acknowledgement"]["claimed_by"] is None
        missing = f"/v1/alerts/{uuid.uuid4()}/ack"
        problem(
            await client.post(missing, json={"by": "A", "note": "n"}, headers=keys.reader),
            404,
            "alert_not_found",
        )
        empty = await client.post(path, json={"by": "A", "note": ""}, headers=keys.reader)
        assert problem(empty, 422, "validation_failed")["errors"][0]["field"] == "body.note"
        problem(
            await client.post("/v1/alerts/nope/ack", json={}, headers=keys.reader),
            422,
            "validation_failed",
        )


async def test_customer_activity_follows_event_time_and_the_fitted_model(
    harness: AlertsHarness, unique: str
) -> None:
    names = await _four_alerts(harness, unique)
    async with api_client(harness.infra, harness.db_url, EventTimeClock()) as client:
        keys = await make_keys(harness.engine)
        url = f"/v1/customers/{names['big']}/activity"
        view = (await client.get(url, headers=keys.reader)).json()
        assert view["as_of"] == "2026-02-17T09:00:00Z", "now is the latest purchase seen (day 45)"
        summary, rhythm = view["summary"], view["rhythm"]
        assert (summary["purchase_count"], summary["spend"], summary["average_order_value"]) == (
            5,
            "300.00",
            "60.00",
        )
        assert (summary["currency"], summary["home_merchant_id"]) == ("EUR", "m1")
        assert (rhythm["mean_gap_days"], rhythm["gaps_measured"], rhythm["flagged_after_days"]) == (
            7.0,
            4,
            21.0,
        )
        assert rhythm["days_since_last_purchase"] == 17.0
        assert rhythm["gap_variation"] == 0.0, "weekly visits: a perfectly regular rhythm"
        assert view["model"] is None, "no model has been fitted yet"
        assert view["open_alert"]["status"] == "at_risk" and view["segment"]["segment"] == "A"

        # Event time jumps: another customer's purchase 30 days later moves "now".
        await harness.publish([shopping(f"other-{unique}", day(75))])
        await harness.settled()
        later = (await client.get(url, headers=keys.reader)).json()
        assert later["rhythm"]["days_since_last_purchase"] == 47.0

        problem(await client.get("/v1/admin/model", headers=keys.admin), 404, "model_not_fitted")
        problem(
            await client.post("/v1/admin/model/refit", headers=keys.reader), 403, "scope_missing"
        )
        refit = await client.post("/v1/admin/model/refit", headers=keys.admin)
        assert refit.status_code == 202, refit.text
        assert refit.headers["location"] == "/v1/admin/model"
        model = refit.json()
        assert model["checks_rescheduled_at"] is None, "no worker here has moved the checks"
        assert model["customers_fitted"] == 6 and model["time_unit"] == "week"
        assert model["as_of"] == "2026-03-19T09:00:00Z", "fitted at event time"
        assert all(model[p] > 0 for p in ("r", "alpha", "a", "b")) and model["log_likelihood"] < 0
        assert (await client.get("/v1/admin/model", headers=keys.admin)).json() == model

        fitted = (await client.get(url, headers=keys.reader)).json()["model"]
        assert fitted["fit_id"] == model["fit_id"] and 0 <= fitted["alive_probability"] <= 1
        assert fitted["expected_purchases"] >= 0 and fitted["horizon_days"] == 90
        assert 0 < fitted["no_purchase_probability"] < 1, "the model rule's score is shown"
        assert fitted["no_purchase_horizon_days"] == 273

        unknown = await client.get(f"/v1/customers/nobody-{unique}/activity", headers=keys.reader)
        problem(unknown, 404, "customer_not_found")
        at_m1 = await client.get(url, headers=keys.bound_m2)
        problem(at_m1, 403, "merchant_mismatch")


async def test_a_changed_follow_up_delay_moves_follow_ups_not_yet_raised(
    harness: AlertsHarness, unique: str
) -> None:
    waiting, raised = f"waiting-{unique}", f"raised-{unique}"
    await harness.publish([shopping(raised, day(0), merchant="m3")])
    await harness.settled()
    assert (await harness.scan(day(8))).follow_ups == 1
    await harness.publish([shopping(waiting, day(8), merchant="m3")])
    await harness.settled()
    due = "SELECT follow_up_due_at FROM customer_activity WHERE customer_id = :c"
    assert await harness.scalar(due, c=waiting) == day(15), "seven days by default"
    async with api_client(harness.infra, harness.db_url, FixedClock(day(9))) as client:
        keys = await make_keys(harness.engine)
        change = {"scope": "merchant", "scope_id": "m3", "settings": {"follow_up_days": 3}}
        stored = await client.put("/v1/admin/thresholds", json=change, headers=keys.admin)
        assert stored.status_code == 200, stored.text
    assert await harness.scalar(due, c=waiting) == day(11), "moved to the new delay"
    assert await harness.scalar(due, c=raised) is None, "a raised follow-up stays raised"
    assert (await harness.scan(day(11) + timedelta(minutes=1))).follow_ups == 1


async def test_thresholds_per_merchant_reschedule_checks_and_refuse_contradictions(
    harness: AlertsHarness, unique: str
) -> None:
    twice_m1, twice_m2 = f"twice-m1-{unique}", f"twice-m2-{unique}"
    await harness.publish(every(twice_m1, days=10, visits=2, last=10))
    await harness.publish(
        [
            {**e, "data": {**e["data"], "merchant_id": "m2"}}
            for e in every(twice_m2, days=10, visits=2, last=10)
        ]
    )
    await harness.settled()
    async with api_client(harness.infra, harness.db_url, FixedClock(day(10))) as client:
        keys = await make_keys(harness.engine)
        listed = (await client.get("/v1/admin/thresholds", headers=keys.admin)).json()
        assert listed["built_in"]["inactivity_window_days"] == 113 and listed["scopes"] == []
        problem(await client.get("/v1/admin/thresholds", headers=keys.reader), 403, "scope_missing")

        change = {"scope": "merchant", "scope_id": "m1", "settings": {"inactivity_window_days": 30}}
        stored = await client.put("/v1/admin/thresholds", json=change, headers=keys.admin)
        assert stored.status_code == 200, stored.text
        assert stored.json()["effective"]["inactivity_window_days"] == 30
        assert stored.json()["effective"]["rhythm_multiple"] == 3, "other thresholds inherited"
        due = await harness.scalar(
            "SELECT next_check_at FROM customer_activity WHERE customer_id = :c", c=twice_m1
        )
        assert due == day(40), "pending checks must be rescheduled under the new window"

        outcome = await harness.scan(day(40) + timedelta(minutes=1))
        assert outcome.raised == 1, "m1's 30-day window flags its customer; m2 keeps 113 days"
        reason = await harness.scalar(
            "SELECT reason FROM alerts WHERE customer_id = :c", c=twice_m1
        )
        assert reason.startswith("no purchase within the 30-day inactivity window")

        contradiction = {"scope": "default", "settings": {"at_risk_alive_probability": 0.05}}
        refused = await client.put("/v1/admin/thresholds", json=contradiction, headers=keys.admin)
        errors = problem(refused, 422, "validation_failed")["errors"]
        assert [(e["field"], e["rule"]) for e in errors] == [
            ("body.settings", "thresholds_consistent")
        ]
        no_id = {"scope": "merchant", "settings": {}}
        problem(
            await client.put("/v1/admin/thresholds", json=no_id, headers=keys.admin),
            422,
            "validation_failed",
        )
        unknown = {"scope": "default", "settings": {"window": 3}}
        body = problem(
            await client.put("/v1/admin/thresholds", json=unknown, headers=keys.admin),
            422,
            "validation_failed",
        )
        assert body["errors"][0]["field"] == "body.settings.window"
        listed = (await client.get("/v1/admin/thresholds", headers=keys.admin)).json()
        assert [(s["scope"], s["scope_id"], s["settings"]) for s in listed["scopes"]] == [
            ("merchant", "m1", {"inactivity_window_days": 30})
        ], "the refused changes must not have been stored"


async def test_threshold_scopes_page_with_an_opaque_cursor_and_lose_none(
    harness: AlertsHarness, unique: str
) -> None:
    merchants = [f"pg-{unique}-{i:02d}" for i in range(7)]
    async with api_client(harness.infra, harness.db_url, FixedClock(day(10))) as client:
        keys = await make_keys(harness.engine)
        for window, merchant in enumerate(merchants, start=20):
            change = {
                "scope": "merchant",
                "scope_id": merchant,
                "settings": {"inactivity_window_days": window},
            }
            stored = await client.put("/v1/admin/thresholds", json=change, headers=keys.admin)
            assert stored.status_code == 200, stored.text
        everything = (await client.get("/v1/admin/thresholds", headers=keys.admin)).json()
        assert everything["next_cursor"] is None, "without a limit every scope is listed"
        listed = [s["scope_id"] for s in everything["scopes"]]

        paged: list[str] = []
        pages, cursor = 0, None
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = await client.get("/v1/admin/thresholds", params=params, headers=keys.admin)
            assert page.status_code == 200, page.text
            body = page.json()
            assert len(body["scopes"]) <= 3
            paged += [s["scope_id"] for s in body["scopes"]]
            pages, cursor = pages + 1, body["next_cursor"]
            if cursor is None:
                break
        assert paged == listed, "pages must list every scope once, in the same order"
        assert pages == -(-len(listed) // 3), "a page of 3 per request, no empty tail page"
        assert set(merchants) <= set(paged)

        forged = await client.get(
            "/v1/admin/thresholds", params={"cursor": "bm90LW91cnM"}, headers=keys.admin
        )
        errors = problem(forged, 422, "validation_failed")["errors"]
        assert [(e["field"], e["rule"]) for e in errors] == [("query.cursor", "cursor_invalid")]
