"""Lapse (churn) warning rules: when a customer's silence becomes worth a person's attention.

Three alerting rules, each a value in `LapseRules` so a merchant or category can have its own
(and each can be switched off: `enabled`); each was judged by a backtest on CDNOW (see the
README for the figures):

* inactivity window: no purchase for a fixed period (default 113 days, the lubrication chain's
  measured oil-change interval);
* own rhythm: no purchase for k times the customer's own mean gap between visits (default
  k = 3), only for a customer whose rhythm is one: at least 4 visits (3 measured gaps) and a
  gap coefficient of variation (standard deviation / mean) of at most 0.5. Irregular buyers
  tripped the old rule at a precision below the base rate: their "3 x mean gap" is noise;
* no-purchase probability: the BG/NBD probability of no purchase in the next `model_horizon`
  (default 273 days, 39 weeks) reaches a threshold (default 0.8, chosen from the backtest);
  defined for one-time buyers too, and only when a fitted model is passed in.

P(alive) is a diagnostic only (shown, never alerting): it is 1 by definition for a one-time
buyer, so as a ranking it was worse than random on CDNOW. `ALIVE_PROBABILITY` stays a rule name
because older alerts carry it.

From at risk to lapsed. A customer becomes `at_risk` when the first rule trips and `lapsed`
when the first rule reaches its lapsed level: twice the silence for the two time rules
(`lapsed_multiple`, so 226 days, or 6 mean gaps) or a no-purchase probability of 0.9.
Because every rule's level is a fixed moment as long as nothing is bought (the no-purchase
probability only rises with silence), the rules produce deadlines, not just verdicts:
`next_check_at` tells a scanner when the outcome can next change, so it works on customers
that are due instead of rescanning everyone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.alerts.domain.activity import ActivitySummary, days_between, require_aware
from services.alerts.domain.bgnbd import (
    BgNbdParams,
    age_when_no_purchase_probability_reaches,
    probability_alive,
    probability_no_purchase,
    summary_to_rfm,
)

_FOREVER = timedelta(days=365 * 200)  # "never" for a deadline, yet still a valid date


class LapseRule(StrEnum):
    INACTIVITY = "inactivity"
    OWN_RHYTHM = "own_rhythm"
    ALIVE_PROBABILITY = "alive_probability"  # diagnostic since the backtest; old alerts only
    NO_PURCHASE_PROBABILITY = "no_purchase_probability"


ALERTING_RULES = frozenset(
    {LapseRule.INACTIVITY, LapseRule.OWN_RHYTHM, LapseRule.NO_PURCHASE_PROBABILITY}
)


class AlertStatus(StrEnum):
    AT_RISK = "at_risk"
    LAPSED = "lapsed"


@dataclass(frozen=True, slots=True)
class LapseRules:
    """Thresholds of the lapse rules; configuration data, so it may differ per merchant."""

    inactivity_window: timedelta = timedelta(days=113)
    rhythm_multiple: float = 3.0
    rhythm_min_visits: int = 4
    rhythm_max_variation: float = 0.5
    at_risk_alive_probability: float = 0.3
    lapsed_alive_probability: float = 0.1
    lapsed_multiple: float = 2.0
    at_risk_no_purchase_probability: float = 0.8
    lapsed_no_purchase_probability: float = 0.9
    model_horizon: timedelta = timedelta(days=273)
    enabled: frozenset[LapseRule] = ALERTING_RULES

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
        if not self.rhythm_max_variation >= 0:
            raise ValueError("the rhythm's maximum gap variation cannot be negative")
        if not (
            0 < self.at_risk_no_purchase_probability <= self.lapsed_no_purchase_probability < 1
        ):
            raise ValueError(
                "need 0 < at-risk no-purchase probability <= lapsed no-purchase probability < 1"
            )
        if self.model_horizon <= timedelta(0):
            raise ValueError("the model horizon must be a positive duration")
        if not self.enabled <= ALERTING_RULES:
            raise ValueError("only inactivity, own_rhythm and no_purchase_probability alert")


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
    deadlines = []
    if LapseRule.INACTIVITY in rules.enabled:
        deadlines.append(
            RuleDeadline(
                LapseRule.INACTIVITY,
                last + rules.inactivity_window,
                last + rules.inactivity_window * rules.lapsed_multiple,
            )
        )
    rhythm = _rhythm_deadline(summary, rules) if LapseRule.OWN_RHYTHM in rules.enabled else None
    if rhythm is not None:
        deadlines.append(rhythm)
    if LapseRule.NO_PURCHASE_PROBABILITY in rules.enabled:
        quiet = _no_purchase_deadline(summary, rules, model)
        if quiet is not None:
            deadlines.append(quiet)
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


def rhythm_silence(summary: ActivitySummary, rules: LapseRules) -> timedelta | None:
    """The silence after which the own-rhythm rule flags this customer; None when they have
    no rhythm to miss (too few visits, or gaps too irregular) or the rule is off."""
    mean_gap = summary.mean_gap_days
    if LapseRule.OWN_RHYTHM not in rules.enabled or mean_gap is None or mean_gap <= 0:
        return None
    if summary.visit_count < rules.rhythm_min_visits:
        return None
    if rhythm_variation(summary) > rules.rhythm_max_variation:
        return None  # too irregular to be a rhythm: the other rules watch this customer
    return timedelta(days=mean_gap * rules.rhythm_multiple)


def _rhythm_deadline(summary: ActivitySummary, rules: LapseRules) -> RuleDeadline | None:
    last, silence = summary.last_purchase_at, rhythm_silence(summary, rules)
    if last is None or silence is None:
        return None
    return RuleDeadline(
        LapseRule.OWN_RHYTHM, last + silence, last + silence * rules.lapsed_multiple
    )


def rhythm_variation(summary: ActivitySummary) -> float:
    """Coefficient of variation of the gaps (standard deviation / mean); 0 below two gaps."""
    variance, mean_gap = summary.gap_variance_days, summary.mean_gap_days
    if variance is None or not mean_gap:
        return 0.0
    return math.sqrt(max(variance, 0.0)) / mean_gap


def _no_purchase_deadline(
    summary: ActivitySummary, rules: LapseRules, model: BgNbdParams | None
) -> RuleDeadline | None:
    first, last = summary.first_purchase_at, summary.last_purchase_at
    if model is None or first is None or last is None:
        return None
    repeat_visits, recency, _ = summary_to_rfm(
        first, last, summary.visit_count, last, unit_days=model.unit_days
    )
    horizon = rules.model_horizon / model.time_unit
    max_age = _FOREVER / model.time_unit
    at_risk_age, lapsed_age = (
        age_when_no_purchase_probability_reaches(
            model, repeat_visits, recency, level, horizon, max_age=max_age
        )
        for level in (rules.at_risk_no_purchase_probability, rules.lapsed_no_purchase_probability)
    )
    return RuleDeadline(
        LapseRule.NO_PURCHASE_PROBABILITY,
        first + _model_duration(model, at_risk_age),
        first + _model_duration(model, lapsed_age),
    )


def _model_duration(model: BgNbdParams, age: float) -> timedelta:
    # Odd parameters can put a deadline centuries away; cap it so date arithmetic cannot overflow
    # (before multiplying: a timedelta times an infinite or huge float raises OverflowError).
    if not math.isfinite(age) or age >= _FOREVER / model.time_unit:
        return _FOREVER
    return model.time_unit * max(age, 0.0)


def current_no_purchase_probability(
    summary: ActivitySummary, now: datetime, model: BgNbdParams, horizon: timedelta
) -> float | None:
    """P(no purchase within `horizon` after `now`); None before any purchase."""
    first, last = summary.first_purchase_at, summary.last_purchase_at
    if first is None or last is None:
        return None
    rfm = summary_to_rfm(first, last, summary.visit_count, now, unit_days=model.unit_days)
    return float(probability_no_purchase(model, horizon / model.time_unit, *rfm))


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
    quiet = (
        None
        if model is None
        else current_no_purchase_probability(summary, now, model, rules.model_horizon)
    )
    return LapseAlert(
        rule=rule,
        status=status,
        reason=_reason(rule, rules, summary, silent_days, quiet),
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
    quiet: float | None,
) -> str:
    silence = f"last purchase {_days(silent_days)} ago"
    if rule is LapseRule.OWN_RHYTHM and summary.mean_gap_days is not None:
        usual = max(1, round(summary.mean_gap_days))
        return f"usually buys every {_days(usual)}; {silence}"
    if rule is LapseRule.NO_PURCHASE_PROBABILITY and quiet is not None:
        horizon_days = rules.model_horizon / timedelta(days=1)
        return (
            f"{quiet:.0%} chance of no purchase in the next {horizon_days:g} days "
            f"(alert from {rules.at_risk_no_purchase_probability:.0%}); {silence}"
        )
    window_days = rules.inactivity_window / timedelta(days=1)
    return f"no purchase within the {window_days:g}-day inactivity window; {silence}"


def _days(count: int) -> str:
    return "1 day" if count == 1 else f"{count} days"
