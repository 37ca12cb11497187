"""Lapse alerts from purchases driven through Kafka, with event time jumped by the test."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.alerts.domain.activity import ActivitySummary
from services.alerts.domain.bgnbd import BgNbdParams
from services.alerts.domain.lapse import rule_deadlines
from services.alerts.domain.thresholds import ThresholdOverrides, ThresholdScope, merged
from services.alerts.model.repository import ModelRepository
from services.alerts.thresholds.repository import ThresholdRepository
from shared.contracts.alerts import AlertEscalated, AlertRaised
from tests.integration.alerts.conftest import AlertsHarness, day, every, shopping

pytestmark = pytest.mark.integration

MINUTE = timedelta(minutes=1)


async def test_weekly_shopper_is_flagged_at_three_weeks_and_quarterly_not_at_five(
    harness: AlertsHarness, unique: str
) -> None:
    weekly, quarterly = f"weekly-{unique}", f"quarterly-{unique}"
    await harness.publish(every(weekly, days=7, visits=6, last=35))
    await harness.publish(every(quarterly, days=91, visits=5, last=35))
    await harness.settled()

    quiet = await harness.scan(day(35 + 20))
    assert quiet.raised == 0, "nobody should be flagged 20 days after a weekly shopper's visit"

    flagged = await harness.scan(day(35 + 21) + MINUTE)
    assert flagged.raised == 1, "the weekly shopper must be flagged after three missed weeks"
    open_alerts = await harness.rows(
        "SELECT customer_id, status, rule, reason, value_at_risk_minor, segment FROM alerts"
        " WHERE closed_at IS NULL"
    )
    assert [(a["customer_id"], a["status"], a["rule"]) for a in open_alerts] == [
        (weekly, "at_risk", "own_rhythm")
    ], f"expected only the weekly shopper at risk by their own rhythm, got {open_alerts}"
    assert open_alerts[0]["reason"] == "usually buys every 7 days; last purchase 21 days ago"
    # 60.00 a visit x 90/7 visits lost over the 90-day horizon (no model fitted yet).
    assert open_alerts[0]["value_at_risk_minor"] == 77_143
    assert open_alerts[0]["segment"] == "A", "the bigger of two spenders at m1 is segment A"

    five_weeks = await harness.scan(day(35 + 35))
    assert five_weeks.raised == 0, "a quarterly customer 5 weeks quiet is not lapsing"
    lapsed = await harness.scan(day(35 + 42) + MINUTE)
    assert lapsed.escalated == 1, "six missed weeks make the weekly shopper lapsed"

    events = await harness.alert_events(expected=4, prefix="alert.")  # + 2 follow-ups
    assert [type(e) for e in events] == [AlertRaised, AlertEscalated], events
    raised, escalated = events
    assert raised.customer_id == weekly and raised.data.status == "at_risk"
    assert str(raised.data.value_at_risk) == "771.43" and raised.data.currency == "EUR"
    assert raised.occurred_at == day(35 + 21), "an alert occurs when the rule tripped"
    assert escalated.data.alert_id == raised.data.alert_id, "escalation is the same alert"
    assert escalated.data.reason == "usually buys every 7 days; last purchase 42 days ago"


async def test_the_113_day_rule_warns_and_then_lapses_a_customer_without_a_rhythm(
    harness: AlertsHarness, unique: str
) -> None:
    customer = f"twice-{unique}"
    await harness.publish(every(customer, days=30, visits=2, last=30))
    await harness.settled()

    assert (await harness.scan(day(30 + 112))).raised == 0, "112 days quiet is within the window"
    assert (await harness.scan(day(30 + 113) + MINUTE)).raised == 1, "113 days must warn"
    assert (await harness.scan(day(30 + 200))).raised == 0, "one open alert per customer"
    assert (await harness.scan(day(30 + 226) + MINUTE)).escalated == 1, "226 days is lapsed"
    again = await harness.scan(day(30 + 400))
    assert (again.raised, again.escalated) == (0, 0), "a lapsed alert is not raised again"

    alerts = await harness.rows("SELECT status, rule, reason, escalated_at FROM alerts")
    assert len(alerts) == 1, f"expected exactly one alert, got {alerts}"
    assert (alerts[0]["status"], alerts[0]["rule"]) == ("lapsed", "inactivity")
    assert alerts[0]["reason"] == (
        "no purchase within the 113-day inactivity window; last purchase 226 days ago"
    )
    next_check = await harness.scalar(
        "SELECT next_check_at FROM customer_activity WHERE customer_id = :c", c=customer
    )
    assert next_check is None, "a lapsed customer waits for a purchase, not for the scanner"
    events = await harness.alert_events(expected=3, prefix="alert.")  # + 1 follow-up
    assert [e.type for e in events] == ["alert.raised", "alert.escalated"]


async def test_the_model_rule_warns_a_one_time_buyer_the_model_expects_no_more_from(
    harness: AlertsHarness, unique: str
) -> None:
    # Only the model rule is on, so its alert is what the scanner must raise, by its own name.
    model = BgNbdParams(
        r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=-9582.4, n_customers=2357
    )
    only_the_model = ThresholdOverrides(inactivity_enabled=False, own_rhythm_enabled=False)
    async with harness.engine.begin() as conn:
        await ModelRepository(conn).store(model, day(0))
        await ThresholdRepository(conn).put(ThresholdScope.DEFAULT, "", only_the_model)
    customer = f"once-{unique}"
    await harness.publish([shopping(customer, day(0))])
    await harness.settled()
    once = ActivitySummary(
        first_purchase_at=day(0), last_purchase_at=day(0), purchase_count=1, visit_count=1
    )
    (deadline,) = rule_deadlines(once, merged(only_the_model).rules, model)
    due = await harness.scalar(
        "SELECT next_check_at FROM customer_activity WHERE customer_id = :c", c=customer
    )
    assert due == deadline.at_risk_at, "the consumer schedules the model rule's deadline"
    assert 140 < (due - day(0)).days < 160, "a one-time buyer is never 'dead' under P(alive)"

    assert (await harness.scan(due - MINUTE)).raised == 0
    assert (await harness.scan(due + MINUTE)).raised == 1
    (alert,) = await harness.rows("SELECT status, rule, reason FROM alerts")
    assert (alert["status"], alert["rule"]) == ("at_risk", "no_purchase_probability")
    assert alert["reason"].startswith("80% chance of no purchase in the next 273 days")
    events = await harness.alert_events(expected=2, prefix="alert.")  # + 1 follow-up
    assert [(e.type, e.data.rule) for e in events] == [("alert.raised", "no_purchase_probability")]
