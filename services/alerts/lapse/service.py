"""The lapse scanner (and the follow-ups of its pass): by due time, O(due), several instances.

Each batch is one transaction: claim due customer rows (`FOR UPDATE SKIP LOCKED`, oldest due
first), judge them with the domain rules, open or escalate alerts, queue the events in the
outbox, and write each row's next due time. A crash before commit loses nothing (the rows are
still due); the partial unique index keeps a second open alert out whatever happens.

Determinism: an alert's id comes from the customer and the last purchase before the silence,
and its facts (reason, days, value at risk, occurred_at) are computed at the moment the rule
TRIPPED, not at the moment a scanner happened to look. So the same purchases, thresholds and
model give the same events, whether scanned every minute or once after a replay.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts.clock.service import AlertsClock
from services.alerts.domain.bgnbd import BgNbdParams
from services.alerts.domain.lapse import (
    AlertStatus,
    LapseAlert,
    LapseRules,
    evaluate_lapse,
    rule_deadlines,
)
from services.alerts.domain.records import CustomerActivity, NewAlert, OpenAlert
from services.alerts.domain.schedule import follow_up_due_at, next_lapse_check
from services.alerts.domain.segments import ValueSegment, customer_value_at_risk_minor
from services.alerts.domain.thresholds import ThresholdBook, Thresholds
from services.alerts.followups.service import raise_due_follow_ups
from services.alerts.lapse.events import alert_escalated, alert_raised, lapse_alert_id
from services.alerts.lapse.repository import AlertRow
from services.alerts.segments.service import segments_for
from services.alerts.uow import AlertsUnitOfWork
from shared.auth import ApiPrincipal
from shared.contracts.topics import Topics
from shared.errors import NotFound
from shared.http import ensure_merchant

log = logging.getLogger(__name__)

_RETRY_LATER = timedelta(days=1)


def _wall_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    checked: int = 0
    raised: int = 0
    escalated: int = 0
    follow_ups: int = 0

    def __add__(self, other: ScanOutcome) -> ScanOutcome:
        return ScanOutcome(
            self.checked + other.checked,
            self.raised + other.raised,
            self.escalated + other.escalated,
            self.follow_ups + other.follow_ups,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """What one claimed customer needs: maybe an alert to open or escalate, and a due time."""

    customer_id: str
    next_check_at: datetime | None
    alert: NewAlert | None = None
    escalate: bool = False


def judge(
    activity: CustomerActivity,
    open_alert: OpenAlert | None,
    thresholds: Thresholds,
    model: BgNbdParams | None,
    segment: ValueSegment,
    now: datetime,
) -> Decision:
    """The decision for one due customer at `now` (pure: no I/O)."""
    summary, rules = activity.summary, thresholds.rules
    current = open_alert.status if open_alert else None
    verdict = evaluate_lapse(summary, rules, now, model)
    worsened = verdict is not None and (
        current is None or (current is AlertStatus.AT_RISK and verdict.status is AlertStatus.LAPSED)
    )
    if verdict is None or not worsened or activity.currency is None:
        return Decision(activity.customer_id, next_lapse_check(summary, rules, model, current))
    tripped_at = _tripped_at(activity, rules, model, verdict)
    facts = evaluate_lapse(summary, rules, tripped_at, model) or verdict
    alert = NewAlert(
        alert_id=open_alert.alert_id
        if open_alert
        else lapse_alert_id(activity.customer_id, facts.last_purchase_at),
        customer_id=activity.customer_id,
        status=verdict.status,
        rule=facts.rule.value,
        reason=facts.reason,
        value_at_risk_minor=customer_value_at_risk_minor(
            summary, tripped_at, horizon=thresholds.risk_horizon, model=model
        ),
        currency=activity.currency,
        segment=segment.value,
        tier=activity.tier,
        merchant_id=activity.home_merchant_id,
        last_purchase_at=facts.last_purchase_at,
        tripped_at=tripped_at,
    )
    return Decision(
        activity.customer_id,
        next_lapse_check(summary, rules, model, verdict.status),
        alert,
        escalate=current is not None,
    )


def _tripped_at(
    activity: CustomerActivity, rules: LapseRules, model: BgNbdParams | None, verdict: LapseAlert
) -> datetime:
    deadline = next(
        d for d in rule_deadlines(activity.summary, rules, model) if d.rule is verdict.rule
    )
    return deadline.lapsed_at if verdict.status is AlertStatus.LAPSED else deadline.at_risk_at


class AlertScanner:
    """Claims due customers in batches and turns verdicts into alerts and events.

    `scan_due` is one pass; `jobs.py` runs it on a `PeriodicJob`.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        clock: AlertsClock,
        *,
        batch_size: int = 500,
        alerts_topic: str = Topics.ALERTS,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.batch_size = batch_size
        self.alerts_topic = alerts_topic

    async def current_time(self) -> datetime | None:
        async with self.engine.connect() as conn:
            return await self.clock.now(conn)

    async def scan_due(self, now: datetime | None = None) -> ScanOutcome:
        """Work through everything due at `now` (the clock's time if not given)."""
        moment = now if now is not None else await self.current_time()
        if moment is None:
            return ScanOutcome()  # event time before the first event: nothing can be due
        total = ScanOutcome()
        for scan_batch in (self.scan_lapse_batch, self.scan_follow_up_batch):
            while True:
                outcome = await scan_batch(moment)
                total += outcome
                if outcome.checked < self.batch_size:
                    break
        return total

    async def scan_lapse_batch(self, now: datetime) -> ScanOutcome:
        """One transaction: claim up to `batch_size` due customers and act on them."""
        async with AlertsUnitOfWork.begin(self.engine, lambda: now) as uow:
            return await judge_due_customers(uow, self.batch_size, self.alerts_topic)

    async def scan_follow_up_batch(self, now: datetime) -> ScanOutcome:
        async with AlertsUnitOfWork.begin(self.engine, lambda: now) as uow:
            raised = await raise_due_follow_ups(uow, self.batch_size, self.alerts_topic)
        return ScanOutcome(checked=raised, follow_ups=raised)


async def judge_due_customers(uow: AlertsUnitOfWork, limit: int, alerts_topic: str) -> ScanOutcome:
    """Claim up to `limit` customers due at `uow.now`, open or escalate their alerts, queue
    the events and write each one's next due time."""
    now = uow.now
    due = await uow.activities.claim_due_lapse_checks(now, limit)
    if not due:
        return ScanOutcome()
    still_open = await uow.alerts.open_for([a.customer_id for a in due])
    book = await uow.thresholds.book()
    model = await uow.models.latest_params()
    segments = await segments_for(uow.segments, due, now)
    decisions = [
        judge(
            a,
            still_open.get(a.customer_id),
            book.for_customer(a.home_merchant_id, a.main_category),
            model,
            segments[a.customer_id],
            now,
        )
        for a in due
    ]
    raised, escalated = await _apply(uow, decisions, alerts_topic)
    await uow.activities.set_next_checks({d.customer_id: _after(d, now) for d in decisions})
    return ScanOutcome(len(due), raised, escalated)


async def _apply(
    uow: AlertsUnitOfWork, decisions: list[Decision], alerts_topic: str
) -> tuple[int, int]:
    new = [d.alert for d in decisions if d.alert is not None and not d.escalate]
    opened = await uow.alerts.open_new(new, uow.now)
    for alert in new:
        if alert.alert_id in opened:
            uow.emit(alerts_topic, alert_raised(alert))
    escalated = 0
    for decision in decisions:
        worse = decision.alert
        if worse is not None and decision.escalate and await uow.alerts.escalate(worse, uow.now):
            uow.emit(alerts_topic, alert_escalated(worse))
            escalated += 1
    return len(opened), escalated


async def reschedule_lapse_checks(
    engine: AsyncEngine, model: BgNbdParams | None, batch_size: int = 5000
) -> int:
    """Recompute every pending due time under `model` and the current thresholds: lapse
    checks, and follow-ups not raised yet (a changed follow-up delay moves them too);
    returns how many customers moved.

    Walks the customers in id order, one transaction per batch. Rows another transaction
    holds are skipped: whoever holds them is rescheduling them with the latest model anyway.
    """
    after, moved = "", 0
    while True:
        async with AlertsUnitOfWork.begin(engine, _wall_now) as uow:
            batch = await uow.activities.pending_after(after, batch_size)
            if not batch:
                return moved
            still_open = await uow.alerts.open_for([a.customer_id for a in batch])
            book = await uow.thresholds.book()
            changes: dict[str, datetime | None] = {}
            follow_ups: dict[str, datetime | None] = {}
            for activity in batch:
                try:
                    _reschedule_one(activity, still_open, book, model, changes, follow_ups)
                except (ArithmeticError, ValueError):
                    # One customer whose numbers break (a bad stored threshold, an odd fit)
                    # must not stop the walk for everyone else, nor the worker.
                    log.exception("lapse check of %s not moved", activity.customer_id)
            await uow.activities.set_next_checks(changes)
            await uow.activities.set_follow_ups_due(follow_ups)
            moved += len(changes.keys() | follow_ups.keys())
            after = batch[-1].customer_id


def _reschedule_one(
    activity: CustomerActivity,
    still_open: Mapping[str, OpenAlert],
    book: ThresholdBook,
    model: BgNbdParams | None,
    changes: dict[str, datetime | None],
    follow_ups: dict[str, datetime | None],
) -> None:
    alert = still_open.get(activity.customer_id)
    rules = book.for_customer(activity.home_merchant_id, activity.main_category).rules
    due = next_lapse_check(activity.summary, rules, model, alert.status if alert else None)
    if activity.next_check_at is not None and due != activity.next_check_at:
        changes[activity.customer_id] = due
    if activity.follow_up_due_at is not None:
        # The delay of the merchant of the first purchase, as when it was set.
        scope = book.for_customer(activity.first_merchant_id, activity.main_category)
        follow_up = follow_up_due_at(activity, scope)
        if follow_up != activity.follow_up_due_at:
            follow_ups[activity.customer_id] = follow_up


def _after(decision: Decision, now: datetime) -> datetime | None:
    # By construction a judged customer is next due strictly after `now`; if a bug ever broke
    # that, re-checking the same row forever would stall the scan, so defer it and say so.
    due = decision.next_check_at
    if due is not None and due <= now:
        log.error("customer %s rescheduled into the past (%s)", decision.customer_id, due)
        return now + _RETRY_LATER
    return due


async def acknowledge(
    uow: AlertsUnitOfWork,
    alert_id: uuid.UUID,
    principal: ApiPrincipal,
    *,
    note: str,
    claimed_by: str | None,
) -> AlertRow:
    """Record that operations saw the alert (the first acknowledgement is kept whole).

    Who acted is the key that authenticated, never what the caller claims (kept apart as
    `claimed_by`); a key bound to a merchant acknowledges only that merchant's alerts.
    """
    row = await uow.alerts.get(alert_id, lock=True)
    if row is None:
        raise NotFound(f"no alert {alert_id}", code="alert_not_found", alert_id=alert_id)
    if principal.merchant_id is not None:
        ensure_merchant(principal, row["merchant_id"] or "")
    key_name = await uow.alerts.api_key_name(principal.key_id) or principal.key_id
    updated = await uow.alerts.acknowledge(
        alert_id,
        by=key_name,
        note=note,
        key_id=principal.key_id,
        at=uow.now,
        claimed_by=claimed_by,
    )
    if updated is None:  # locked above, so it cannot have gone
        raise NotFound(f"no alert {alert_id}", code="alert_not_found", alert_id=alert_id)
    return updated
