"""Lapse (churn) warning rules: when a customer's silence becomes worth a person's attention.

Three rules, each a value in `LapseRules` so a merchant or category can have its own:

* inactivity window: no purchase for a fixed period (default 113 days, the lubrication chain's
  measured oil-change interval);
* own rhythm: no purchase for k times the customer's own mean gap between visits (default
  k = 3, only once there are at least 3 visits, i.e. 2 measured gaps: one gap is no rhythm);
* alive probability: the BG/NBD probability that the customer is still active falls below a
  threshold (default 0.3); only when a fitted model is passed in and the customer came back
  at least once (BG/NBD cannot lose a customer who never returned).

From at risk to lapsed. A customer becomes `at_risk` when the first rule trips and `lapsed`
when the first rule reaches its lapsed level: twice the silence for the two time rules
(`lapsed_multiple`, so 226 days, or 6 mean gaps) or P(alive) below 0.1. Because every rule's
level is a fixed moment as long as nothing is bought (P(alive) only falls with silence), the
rules produce deadlines, not just verdicts: `next_check_at` tells a scanner when the outcome can
next change, so it works on customers that are due instead of rescanning everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.alerts.domain.activity import ActivitySummary, days_between, require_aware
from services.alerts.domain.bgnbd import (
    BgNbdParams,
    age_when_alive_probability_falls_to,
    probability_alive,
    summary_to_rfm,
)

_FOREVER = timedelta(days=365 * 200)  # "never" for a deadline, yet still a valid date


class LapseRule(StrEnum):
    INACTIVITY = "inactivity"
    OWN_RHYTHM = "own_rhythm"
    ALIVE_PROBABILITY = "alive_probability"


class AlertStatus(StrEnum):
    AT_RISK = "at_risk"
    LAPSED = "lapsed"


@dataclass(frozen=True, slots=True)
class LapseRules:
    """Thresholds of the lapse rules; configuration data, so it may differ per merchant."""

    inactivity_window: timedelta = timedelta(days=113)
    rhythm_multiple: float = 3.0
    rhythm_min_visits: int = 3
    at_risk_alive_probability: float = 0.3
    lapsed_alive_probability: float = 0.1
    lapsed_multiple: float = 2.0

    def __post_init__(self) -> None:
        if self.inactivity_window <= timedelta(0):
            raise ValueError("the inactivity window must be a positive duration")
        if self.rhythm_multiple <= 0:
            raise ValueError("the rhythm multiple must be positive")
        if self.rhythm_min_visits < 2:
            raise ValueError("a rhythm needs at least 2 visits (one gap)")
        if not 0 < self.lapsed_alive_probability <= self.at_risk_alive_probability < 1:
            raise ValueError("need 0 < lapsed probability <= at-risk probability < 1")
        if self.lapsed_multiple < 1:
            raise ValueError("lapsed cannot come before at risk: lapsed multiple must be >= 1")


@dataclass(frozen=True, slots=True)
class RuleDeadline:
    """When one rule makes the customer at risk, and when lapsed, if nothing is bought."""

    rule: LapseRule
    at_risk_at: datetime
    lapsed_at: datetime


@dataclass(frozen=True, slots=True)
class LapseAlert:
    """The verdict on one customer at one moment; `reason` is written for CRM staff."""

    rule: LapseRule
    status: AlertStatus
    reason: str
    last_purchase_at: datetime
    days_since_last_purchase: int
    mean_gap_days: float | None
    alive_probability: float | None


def rule_deadlines(
    summary: ActivitySummary, rules: LapseRules, model: BgNbdParams | None = None
) -> tuple[RuleDeadline, ...]:
    """Deadlines of every rule that applies to this customer; empty before any purchase."""
    last = summary.last_purchase_at
    if last is None:
        return ()
    deadlines = [
        RuleDeadline(
            LapseRule.INACTIVITY,
            last + rules.inactivity_window,
            last + rules.inactivity_window * rules.lapsed_multiple,
        )
    ]
    rhythm = _rhythm_deadline(summary, rules)
    if rhythm is not None:
        deadlines.append(rhythm)
    alive = _alive_probability_deadline(summary, rules, model)
    if alive is not None:
        deadlines.append(alive)
    return tuple(deadlines)


def next_check_at(
    summary: ActivitySummary,
    rules: LapseRules,
    now: datetime,
    model: BgNbdParams | None = None,
) -> datetime | None:
    """The next moment after `now` at which the verdict changes, if nothing is bought.

    Only the earliest at-risk and the earliest lapsed deadline can change the verdict, so a
    scanner is woken exactly twice per silence. None when there is nothing left to wait for
    (no purchase yet, or already lapsed); a new purchase changes the summary, and the caller
    recomputes from it.
    """
    require_aware(now, "evaluation time")
    deadlines = rule_deadlines(summary, rules, model)
    if not deadlines:
        return None
    turning_points = (
        min(d.at_risk_at for d in deadlines),
        min(d.lapsed_at for d in deadlines),
    )
    return min((moment for moment in turning_points if moment > now), default=None)


def evaluate_lapse(
    summary: ActivitySummary,
    rules: LapseRules,
    now: datetime,
    model: BgNbdParams | None = None,
) -> LapseAlert | None:
    """The alert for this customer at `now`, or None while no rule has tripped.

    The alert names the rule that tripped first for its status (lapsed beats at risk), since
    that is the most telling explanation of why someone should call this customer.
    """
    require_aware(now, "evaluation time")
    deadlines = rule_deadlines(summary, rules, model)
    lapsed = [d for d in deadlines if d.lapsed_at <= now]
    at_risk = [d for d in deadlines if d.at_risk_at <= now]
    if lapsed:
        status, decisive = AlertStatus.LAPSED, min(lapsed, key=lambda d: d.lapsed_at)
    elif at_risk:
        status, decisive = AlertStatus.AT_RISK, min(at_risk, key=lambda d: d.at_risk_at)
    else:
        return None
    return _alert(summary, rules, now, model, status, decisive.rule)


def _rhythm_deadline(summary: ActivitySummary, rules: LapseRules) -> RuleDeadline | None:
    last, mean_gap = summary.last_purchase_at, summary.mean_gap_days
    if last is None or mean_gap is None or mean_gap <= 0:
        return None
    if summary.gaps.count < rules.rhythm_min_visits - 1:
        return None
    silence = timedelta(days=mean_gap * rules.rhythm_multiple)
    return RuleDeadline(
        LapseRule.OWN_RHYTHM, last + silence, last + silence * rules.lapsed_multiple
    )


def _alive_probability_deadline(
    summary: ActivitySummary, rules: LapseRules, model: BgNbdParams | None
) -> RuleDeadline | None:
    first, last = summary.first_purchase_at, summary.last_purchase_at
    if model is None or first is None or last is None:
        return None
    repeat_visits, recency, _ = summary_to_rfm(
        first, last, summary.visit_count, last, unit_days=model.unit_days
    )
    at_risk_age = age_when_alive_probability_falls_to(
        model, repeat_visits, recency, rules.at_risk_alive_probability
    )
    lapsed_age = age_when_alive_probability_falls_to(
        model, repeat_visits, recency, rules.lapsed_alive_probability
    )
    if at_risk_age is None or lapsed_age is None:
        return None
    return RuleDeadline(
        LapseRule.ALIVE_PROBABILITY,
        first + _model_duration(model, at_risk_age),
        first + _model_duration(model, lapsed_age),
    )


def _model_duration(model: BgNbdParams, age: float) -> timedelta:
    # Odd parameters can put a deadline centuries away; cap it so date arithmetic cannot overflow.
    return min(model.time_unit * age, _FOREVER)


def current_alive_probability(
    summary: ActivitySummary, now: datetime, model: BgNbdParams
) -> float | None:
    """P(alive) at `now`; None before any purchase."""
    first, last = summary.first_purchase_at, summary.last_purchase_at
    if first is None or last is None:
        return None
    rfm = summary_to_rfm(first, last, summary.visit_count, now, unit_days=model.unit_days)
    return float(probability_alive(model, *rfm))


def _alert(
    summary: ActivitySummary,
    rules: LapseRules,
    now: datetime,
    model: BgNbdParams | None,
    status: AlertStatus,
    rule: LapseRule,
) -> LapseAlert:
    last = summary.last_purchase_at
    assert last is not None  # a deadline exists only after a purchase
    silent_days = max(0, int(days_between(last, now)))
    alive = None if model is None else current_alive_probability(summary, now, model)
    return LapseAlert(
        rule=rule,
        status=status,
        reason=_reason(rule, rules, summary, silent_days, alive),
        last_purchase_at=last,
        days_since_last_purchase=silent_days,
        mean_gap_days=summary.mean_gap_days,
        alive_probability=alive,
    )


def _reason(
    rule: LapseRule,
    rules: LapseRules,
    summary: ActivitySummary,
    silent_days: int,
    alive: float | None,
) -> str:
    silence = f"last purchase {_days(silent_days)} ago"
    if rule is LapseRule.OWN_RHYTHM and summary.mean_gap_days is not None:
        usual = max(1, round(summary.mean_gap_days))
        return f"usually buys every {_days(usual)}; {silence}"
    if rule is LapseRule.ALIVE_PROBABILITY and alive is not None:
        return (
            f"chance this customer still buys here is {alive:.0%} "
            f"(alert below {rules.at_risk_alive_probability:.0%}); {silence}"
        )
    window_days = rules.inactivity_window / timedelta(days=1)
    return f"no purchase within the {window_days:g}-day inactivity window; {silence}"


def _days(count: int) -> str:
    return "1 day" if count == 1 else f"{count} days"
