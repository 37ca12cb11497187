"""Lapse warning rules: each customer is judged against their own rhythm, not only a calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.alerts.domain.activity import ActivityError, ActivitySummary, apply_purchase
from services.alerts.domain.bgnbd import BgNbdParams
from services.alerts.domain.lapse import (
    AlertStatus,
    LapseAlert,
    LapseRule,
    LapseRules,
    evaluate_lapse,
    next_check_at,
    rule_deadlines,
)

START = datetime(2024, 1, 6, 10, 0, tzinfo=UTC)
RULES = LapseRules()
CDNOW_MODEL = BgNbdParams(
    r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=-9582.4, n_customers=2357
)


def shopper(every_days: float, visits: int) -> ActivitySummary:
    summary = ActivitySummary()
    for visit in range(visits):
        moment = START + timedelta(days=every_days * visit)
        summary = apply_purchase(summary, moment, 6_000, "supermarket")
    return summary


def days_after_last(summary: ActivitySummary, days: float) -> datetime:
    assert summary.last_purchase_at is not None
    return summary.last_purchase_at + timedelta(days=days)


def verdict(alert: LapseAlert | None) -> tuple[AlertStatus, LapseRule] | None:
    return None if alert is None else (alert.status, alert.rule)


@pytest.mark.parametrize("model", [None, CDNOW_MODEL])
def test_weekly_shopper_is_flagged_after_three_missed_weeks(model: BgNbdParams | None) -> None:
    weekly = shopper(every_days=7, visits=8)
    assert evaluate_lapse(weekly, RULES, days_after_last(weekly, 20), model) is None, (
        "a weekly shopper 20 days quiet should not be flagged yet"
    )
    alert = evaluate_lapse(weekly, RULES, days_after_last(weekly, 24), model)
    assert alert is not None, "a weekly shopper silent for 24 days must be flagged"
    assert (alert.status, alert.rule) == (AlertStatus.AT_RISK, LapseRule.OWN_RHYTHM)
    assert alert.reason == "usually buys every 7 days; last purchase 24 days ago"
    assert alert.days_since_last_purchase == 24


def test_weekly_shopper_is_lapsed_after_six_missed_weeks() -> None:
    weekly = shopper(every_days=7, visits=8)
    assert verdict(evaluate_lapse(weekly, RULES, days_after_last(weekly, 41))) == (
        AlertStatus.AT_RISK,
        LapseRule.OWN_RHYTHM,
    )
    alert = evaluate_lapse(weekly, RULES, days_after_last(weekly, 42))
    assert verdict(alert) == (AlertStatus.LAPSED, LapseRule.OWN_RHYTHM), "2 x 3 weeks = lapsed"


@pytest.mark.parametrize("model", [None, CDNOW_MODEL])
def test_quarterly_shopper_is_not_flagged_at_five_weeks(model: BgNbdParams | None) -> None:
    quarterly = shopper(every_days=91, visits=5)
    alert = evaluate_lapse(quarterly, RULES, days_after_last(quarterly, 35), model)
    assert alert is None, f"a quarterly shopper 5 weeks quiet is on schedule, got {alert}"


def test_quarterly_shopper_falls_back_to_the_113_day_window() -> None:
    quarterly = shopper(every_days=91, visits=5)
    assert evaluate_lapse(quarterly, RULES, days_after_last(quarterly, 112)) is None
    alert = evaluate_lapse(quarterly, RULES, days_after_last(quarterly, 113))
    assert verdict(alert) == (AlertStatus.AT_RISK, LapseRule.INACTIVITY), (
        "3 x 91 days is later than 113 days, so the fixed window must trip first"
    )


def test_first_time_customer_is_at_risk_at_113_days_and_lapsed_at_226() -> None:
    once = shopper(every_days=0, visits=1)
    assert evaluate_lapse(once, RULES, days_after_last(once, 112.9), CDNOW_MODEL) is None
    at_risk = evaluate_lapse(once, RULES, days_after_last(once, 113), CDNOW_MODEL)
    assert verdict(at_risk) == (AlertStatus.AT_RISK, LapseRule.INACTIVITY)
    assert at_risk is not None
    assert at_risk.reason == (
        "no purchase within the 113-day inactivity window; last purchase 113 days ago"
    )
    lapsed = evaluate_lapse(once, RULES, days_after_last(once, 226), CDNOW_MODEL)
    assert verdict(lapsed) == (AlertStatus.LAPSED, LapseRule.INACTIVITY)


def test_inactivity_window_is_configurable_per_merchant() -> None:
    oil_change = LapseRules(inactivity_window=timedelta(days=30))
    once = shopper(every_days=0, visits=1)
    assert verdict(evaluate_lapse(once, oil_change, days_after_last(once, 31))) == (
        AlertStatus.AT_RISK,
        LapseRule.INACTIVITY,
    )


def test_fewer_than_three_visits_never_use_the_rhythm_rule() -> None:
    twice = shopper(every_days=7, visits=2)
    assert evaluate_lapse(twice, RULES, days_after_last(twice, 60)) is None, (
        "two visits one week apart are no rhythm: 60 days of silence must not trip it"
    )
    assert all(d.rule is not LapseRule.OWN_RHYTHM for d in rule_deadlines(twice, RULES))
    three = shopper(every_days=7, visits=3)
    assert verdict(evaluate_lapse(three, RULES, days_after_last(three, 22))) == (
        AlertStatus.AT_RISK,
        LapseRule.OWN_RHYTHM,
    )


def test_alive_probability_rule_trips_when_the_model_gives_up_on_the_customer() -> None:
    only_the_model = LapseRules(inactivity_window=timedelta(days=5_000), rhythm_min_visits=1_000)
    fortnightly = shopper(every_days=14, visits=10)
    (deadline,) = rule_deadlines(fortnightly, only_the_model, CDNOW_MODEL)[1:]
    assert deadline.rule is LapseRule.ALIVE_PROBABILITY
    before = deadline.at_risk_at - timedelta(minutes=1)
    assert evaluate_lapse(fortnightly, only_the_model, before, CDNOW_MODEL) is None
    alert = evaluate_lapse(fortnightly, only_the_model, deadline.at_risk_at, CDNOW_MODEL)
    assert alert is not None and alert.rule is LapseRule.ALIVE_PROBABILITY
    assert alert.status is AlertStatus.AT_RISK
    assert alert.alive_probability == pytest.approx(0.3, abs=1e-6), "tripped off the threshold"
    assert alert.reason.startswith("chance this customer still buys here is 30% (alert below 30%)")
    lapsed = evaluate_lapse(fortnightly, only_the_model, deadline.lapsed_at, CDNOW_MODEL)
    assert lapsed is not None and lapsed.status is AlertStatus.LAPSED
    assert lapsed.alive_probability == pytest.approx(0.1, abs=1e-6)


def test_no_alert_and_nothing_to_check_before_the_first_purchase() -> None:
    now = START + timedelta(days=400)
    assert evaluate_lapse(ActivitySummary(), RULES, now, CDNOW_MODEL) is None
    assert next_check_at(ActivitySummary(), RULES, now, CDNOW_MODEL) is None


def test_scanner_is_woken_when_at_risk_then_when_lapsed_then_never() -> None:
    weekly = shopper(every_days=7, visits=8)
    assert next_check_at(weekly, RULES, days_after_last(weekly, 3)) == days_after_last(weekly, 21)
    assert next_check_at(weekly, RULES, days_after_last(weekly, 21)) == days_after_last(weekly, 42)
    assert next_check_at(weekly, RULES, days_after_last(weekly, 50)) is None, (
        "a lapsed customer waits for a purchase, not for the scanner"
    )


@settings(max_examples=80, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=1.0, max_value=120.0), min_size=0, max_size=8),
    quiet_days=st.floats(min_value=0.0, max_value=400.0),
    with_model=st.booleans(),
)
def test_verdict_changes_only_at_the_next_check(
    gaps: list[float], quiet_days: float, with_model: bool
) -> None:
    summary, moment = ActivitySummary(), START
    summary = apply_purchase(summary, moment, 1_000, "shop")
    for gap in gaps:
        moment += timedelta(days=gap)
        summary = apply_purchase(summary, moment, 1_000, "shop")
    model = CDNOW_MODEL if with_model else None
    now = days_after_last(summary, quiet_days)
    today = verdict(evaluate_lapse(summary, RULES, now, model))
    due = next_check_at(summary, RULES, now, model)
    if due is None:
        assert today is not None and today[0] is AlertStatus.LAPSED
        later = verdict(evaluate_lapse(summary, RULES, now + timedelta(days=3_000), model))
        assert later == today, "nothing may change after the scanner was told to stop"
        return
    assert due > now
    just_before = verdict(evaluate_lapse(summary, RULES, due - timedelta(seconds=1), model))
    assert just_before == today, "the verdict changed before the scanner was due"
    assert verdict(evaluate_lapse(summary, RULES, due, model)) != today, (
        "the scanner was woken but nothing changed"
    )


def test_naive_evaluation_time_is_rejected() -> None:
    with pytest.raises(ActivityError):
        evaluate_lapse(shopper(7, 3), RULES, datetime(2024, 6, 1))
    with pytest.raises(ActivityError):
        next_check_at(shopper(7, 3), RULES, datetime(2024, 6, 1))


@pytest.mark.parametrize(
    "bad",
    [
        {"inactivity_window": timedelta(0)},
        {"rhythm_multiple": 0.0},
        {"rhythm_min_visits": 1},
        {"at_risk_alive_probability": 0.1, "lapsed_alive_probability": 0.3},
        {"lapsed_multiple": 0.5},
    ],
)
def test_rules_that_make_no_sense_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LapseRules(**bad)  # type: ignore[arg-type]
