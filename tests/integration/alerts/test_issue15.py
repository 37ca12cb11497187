"""Issue 15 in alerts: exact visits in any arrival order, thresholds that cannot crash a worker."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa

from services.alerts.clock.service import FixedClock
from services.alerts.domain.bgnbd import BgNbdParams
from services.alerts.lapse.service import reschedule_lapse_checks
from tests.integration.alerts.conftest import (
    AlertsHarness,
    api_client,
    day,
    make_keys,
    problem,
    shopping,
)

pytestmark = pytest.mark.integration

CDNOW = BgNbdParams(
    r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=-9582.4, n_customers=2357
)


async def _summary(harness: AlertsHarness, customer: str) -> dict[str, object]:
    (row,) = await harness.rows(
        "SELECT purchase_count, visit_count, gap_count, gap_mean_days,"
        " gap_sum_squared_deviations, first_purchase_at, last_purchase_at, next_check_at"
        " FROM customer_activity WHERE customer_id = :c",
        c=customer,
    )
    return dict(row)


async def test_visits_are_the_same_whatever_order_purchases_arrive_in(
    harness: AlertsHarness, unique: str
) -> None:
    late, in_order = f"late-{unique}", f"ordered-{unique}"
    # Jan 1, Jan 20, then Jan 10 twice (a late till upload), each its own batch.
    for at in (day(0), day(19), day(9), day(9)):
        await harness.publish([shopping(late, at)])
        await harness.settled()
    await harness.publish([shopping(in_order, at) for at in (day(0), day(9), day(9), day(19))])
    await harness.settled()
    got, expected = await _summary(harness, late), await _summary(harness, in_order)
    assert (got["purchase_count"], got["visit_count"], got["gap_count"]) == (4, 3, 2), (
        f"Jan 1, 20, 10, 10 are four purchases on three visits with two gaps, got {got}"
    )
    floats = ("gap_mean_days", "gap_sum_squared_deviations")
    assert [got[k] for k in floats] == pytest.approx([expected[k] for k in floats])
    exact = {k: v for k, v in got.items() if k not in floats}
    assert exact == {k: v for k, v in expected.items() if k not in floats}, (
        "arrival order changed the activity summary"
    )
    stored = await harness.scalar(
        "SELECT count(*) FROM purchase_history WHERE customer_id = :c", c=late
    )
    assert stored == 4, "every purchase is kept, whatever it earned"


async def test_a_free_purchase_is_a_visit(harness: AlertsHarness, unique: str) -> None:
    customer = f"free-{unique}"
    await harness.publish([shopping(customer, day(0)), shopping(customer, day(7), amount="0.00")])
    await harness.settled()
    got = await _summary(harness, customer)
    assert (got["purchase_count"], got["visit_count"]) == (2, 2), got


async def test_a_bad_stored_threshold_is_skipped_and_the_rescheduler_survives(
    harness: AlertsHarness, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    customers = [f"steady-{unique}-{k}" for k in range(3)]
    for customer in customers:
        await harness.publish([shopping(customer, day(7 * k)) for k in range(6)])
    await harness.settled()
    # Written straight into the table, as before the ranges existed (or by hand).
    async with harness.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO alert_thresholds (scope, scope_id, settings) VALUES"
                " ('default', '', CAST(:s AS jsonb))"
            ),
            {"s": json.dumps({"at_risk_alive_probability": 1e-300, "rhythm_multiple": 1e-300})},
        )
    with caplog.at_level(logging.ERROR):
        moved = await reschedule_lapse_checks(harness.engine, CDNOW)
    assert moved >= 0, "the walk must finish"
    assert any("out of range" in r.getMessage() for r in caplog.records), (
        "skipping a stored scope must be logged as an error"
    )
    for customer in customers:
        due = (await _summary(harness, customer))["next_check_at"]
        assert due == day(35) + timedelta(days=21), (
            f"{customer}'s check must follow the built-in rhythm (3 missed weeks), got {due}"
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("at_risk_alive_probability", 1e-300),
        ("at_risk_no_purchase_probability", 1.0),
        ("lapsed_no_purchase_probability", 0.0),
        ("rhythm_multiple", 1e-300),
        ("rhythm_max_variation", -1),
        ("model_horizon_days", 0),
    ],
)
async def test_thresholds_out_of_range_are_refused_naming_the_field(
    harness: AlertsHarness, field: str, value: float
) -> None:
    async with api_client(harness.infra, harness.db_url, FixedClock(day(1))) as client:
        keys = await make_keys(harness.engine)
        change = {"scope": "default", "settings": {field: value}}
        refused = await client.put("/v1/admin/thresholds", json=change, headers=keys.admin)
        (error,) = problem(refused, 422, "validation_failed")["errors"]
        assert error["field"] == f"body.settings.{field}", error
        assert error["rule"] in {"greater_than_equal", "less_than_equal"}, error
    assert await harness.scalar("SELECT count(*) FROM alert_thresholds") == 0


async def test_a_late_receipt_can_join_two_visits_into_one(
    harness: AlertsHarness, unique: str
) -> None:
    # 09:00 and 05:00 the next day are two visits (20 h apart); a receipt from 19:00 arriving
    # last chains them into one shopping trip (each step within the 12-hour window).
    customer = f"joined-{unique}"
    times = (day(0), day(0) + timedelta(hours=20), day(0) + timedelta(hours=10))
    await harness.publish([shopping(customer, at) for at in times])
    await harness.settled()
    got = await _summary(harness, customer)
    assert (got["purchase_count"], got["visit_count"], got["gap_count"]) == (3, 1, 0), got
