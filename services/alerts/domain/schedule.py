"""When a customer next needs looking at: the due times the scanners claim work by.

The lapse rules give each rule a fixed at-risk and lapsed moment as long as nothing is bought
(`rule_deadlines`). Which of those moments matters depends on the alert already open: none
open, the earliest at-risk moment; an at-risk alert open, the earliest lapsed moment; a lapsed
alert open, nothing (NULL, out of the index) until a purchase changes the summary.

Scheduling from the alert state, rather than "the next turning point after now", keeps the due
time right whatever changed it: a late purchase, new thresholds or a refitted model. A due
time already in the past simply means "due now".
"""

from __future__ import annotations

from datetime import datetime

from services.alerts.domain.activity import ActivitySummary
from services.alerts.domain.bgnbd import BgNbdParams
from services.alerts.domain.lapse import AlertStatus, LapseRules, rule_deadlines
from services.alerts.domain.records import CustomerActivity
from services.alerts.domain.thresholds import Thresholds


def next_lapse_check(
    summary: ActivitySummary,
    rules: LapseRules,
    model: BgNbdParams | None,
    open_status: AlertStatus | None,
) -> datetime | None:
    """The moment the lapse verdict next moves beyond `open_status`; None if it never will."""
    if open_status is AlertStatus.LAPSED:
        return None
    deadlines = rule_deadlines(summary, rules, model)
    if not deadlines:
        return None
    if open_status is None:
        return min(d.at_risk_at for d in deadlines)
    return min(d.lapsed_at for d in deadlines)


def follow_up_due_at(activity: CustomerActivity, thresholds: Thresholds) -> datetime | None:
    """First purchase + the follow-up delay, unless the follow-up was already raised."""
    first = activity.summary.first_purchase_at
    if first is None or activity.follow_up_raised_at is not None:
        return None
    return first + thresholds.follow_up_after
