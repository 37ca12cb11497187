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
    current_no_purchase_probability,
    evaluate_lapse,
    next_check_at,
    rhythm_variation,
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


def test_fewer_than_four_visits_never_use_the_rhythm_rule() -> None:
    three = shopper(every_days=7, visits=3)
    assert evaluate_lapse(three, RULES, days_after_last(three, 60)) is None, (
        "three visits a week apart are no rhythm yet: 60 days of silence must not trip it"
    )
    assert all(d.rule is not LapseRule.OWN_RHYTHM for d in rule_deadlines(three, RULES))
    four = shopper(every_days=7, visits=4)
    assert verdict(evaluate_lapse(four, RULES, days_after_last(four, 22))) == (
        AlertStatus.AT_RISK,
        LapseRule.OWN_RHYTHM,
    )


def irregular_shopper(gaps: list[float]) -> ActivitySummary:
    summary, moment = apply_purchase(ActivitySummary(), START, 6_000, "shop"), START
    for gap in gaps:
        moment += timedelta(days=gap)
        summary = apply_purchase(summary, moment, 6_000, "shop")
    return summary


def test_an_irregular_buyer_has_no_rhythm_to_miss() -> None:
    # Mean gap 20 days but wildly spread (coefficient of variation ~1.2): 60 days of silence
    # is nothing unusual for them, so the rhythm rule must stay quiet (the old rule flagged
    # them; on CDNOW such flags were right less often than the base rate).
    erratic = irregular_shopper([2.0, 3.0, 55.0, 2.0, 38.0])
    assert rhythm_variation(erratic) > RULES.rhythm_max_variation
    assert all(d.rule is not LapseRule.OWN_RHYTHM for d in rule_deadlines(erratic, RULES))
    assert evaluate_lapse(erratic, RULES, days_after_last(erratic, 61)) is None
    steady = irregular_shopper([19.0, 21.0, 20.0, 22.0, 18.0])
    assert rhythm_variation(steady) < 0.1
    assert verdict(evaluate_lapse(steady, RULES, days_after_last(steady, 61))) == (
        AlertStatus.AT_RISK,
        LapseRule.OWN_RHYTHM,
    ), "a steady 20-day rhythm missed three times must be flagged"


def test_no_purchase_rule_trips_when_the_model_expects_no_purchase_in_the_horizon() -> None:
    only_the_model = LapseRules(
        inactivity_window=timedelta(days=5_000),
        enabled=frozenset({LapseRule.NO_PURCHASE_PROBABILITY}),
    )
    fortnightly = shopper(every_days=14, visits=10)
    (deadline,) = rule_deadlines(fortnightly, only_the_model, CDNOW_MODEL)
    assert deadline.rule is LapseRule.NO_PURCHASE_PROBABILITY
    before = deadline.at_risk_at - timedelta(minutes=5)
    assert evaluate_lapse(fortnightly, only_the_model, before, CDNOW_MODEL) is None
    alert = evaluate_lapse(fortnightly, only_the_model, deadline.at_risk_at, CDNOW_MODEL)
    assert alert is not None and alert.rule is LapseRule.NO_PURCHASE_PROBABILITY
    assert alert.status is AlertStatus.AT_RISK
    quiet = current_no_purchase_probability(
        fortnightly, deadline.at_risk_at, CDNOW_MODEL, only_the_model.model_horizon
    )
    assert quiet == pytest.approx(0.8, abs=1e-3), "tripped off the threshold"
    assert alert.reason.startswith("80% chance of no purchase in the next 273 days")
    lapsed = evaluate_lapse(fortnightly, only_the_model, deadline.lapsed_at, CDNOW_MODEL)
    assert lapsed is not None and lapsed.status is AlertStatus.LAPSED


def test_no_purchase_rule_covers_one_time_buyers() -> None:
    # P(alive) is 1 for them forever; the no-purchase probability still rises with silence.
    model_only = LapseRules(enabled=frozenset({LapseRule.NO_PURCHASE_PROBABILITY}))
    once = shopper(every_days=0, visits=1)
    (deadline,) = rule_deadlines(once, model_only, CDNOW_MODEL)
    assert START < deadline.at_risk_at < deadline.lapsed_at < START + timedelta(days=365 * 50)


def test_a_disabled_rule_never_alerts() -> None:
    no_window = LapseRules(enabled=frozenset({LapseRule.OWN_RHYTHM}))
    once = shopper(every_days=0, visits=1)
    assert evaluate_lapse(once, no_window, days_after_last(once, 400), CDNOW_MODEL) is None


def test_extreme_thresholds_give_far_deadlines_not_overflow() -> None:
    # Issue 15: a threshold of 1e-300 put due dates beyond the calendar and killed a worker.
    extreme = LapseRules(
        at_risk_no_purchase_probability=1e-300, lapsed_no_purchase_probability=1 - 1e-16
    )
    deadlines = rule_deadlines(shopper(every_days=14, visits=10), extreme, CDNOW_MODEL)
    assert any(d.rule is LapseRule.NO_PURCHASE_PROBABILITY for d in deadlines)


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
        {"at_risk_no_purchase_probability": 0.95, "lapsed_no_purchase_probability": 0.9},
        {"enabled": frozenset({LapseRule.ALIVE_PROBABILITY})},
        {"at_risk_alive_probability": 0.1, "lapsed_alive_probability": 0.3},
        {"lapsed_multiple": 0.5},
    ],
)
def test_rules_that_make_no_sense_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        # Each value has its field's type; mypy sees only the dict's common `object`.
        LapseRules(**bad)  # type: ignore[arg-type]
