"""The lapse and follow-up scanners: work by due time, O(due), safe with several instances.

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

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.alerts.clock import AlertsClock
from services.alerts.domain.activity import days_between
from services.alerts.domain.bgnbd import BgNbdParams
from services.alerts.domain.lapse import (
    AlertStatus,
    LapseAlert,
    LapseRules,
    evaluate_lapse,
    rule_deadlines,
)
from services.alerts.domain.segments import ValueSegment, customer_value_at_risk_minor
from services.alerts.ranking import segments_for
from services.alerts.records import LAPSE_KIND, CustomerActivity, OpenAlert
from services.alerts.repository import (
    NewAlert,
    claim_due_follow_ups,
    claim_due_lapse_checks,
    escalate_alert,
    latest_model,
    load_threshold_book,
    mark_follow_ups_raised,
    open_alerts,
    open_new_alerts,
    set_next_checks,
)
from services.alerts.schedule import next_lapse_check
from services.alerts.thresholds import Thresholds
from shared.contracts.alerts import (
    ALERTS_SOURCE,
    AlertEscalated,
    AlertEscalatedData,
    AlertRaised,
    AlertRaisedData,
    FollowUpDue,
    FollowUpDueData,
)
from shared.contracts.envelope import EventEnvelope, derived_event_id
from shared.contracts.topics import Topics
from shared.errors import is_transient
from shared.money import format_money
from shared.outbox import OutboxWriter

log = logging.getLogger(__name__)

_RETRY_LATER = timedelta(days=1)


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


def lapse_alert_id(customer_id: str, last_purchase_at: datetime) -> uuid.UUID:
    """One lapse alert per silence: the customer and the purchase the silence follows."""
    moment = last_purchase_at.astimezone(UTC).isoformat()
    return derived_event_id(f"alert:{customer_id}", f"{LAPSE_KIND}:{moment}")


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


def alert_event(alert: NewAlert, escalation: bool) -> EventEnvelope:
    """`alert.raised` or `alert.escalated` for `alert`, with a derived id."""
    facts = {
        "alert_id": alert.alert_id,
        "kind": LAPSE_KIND,
        "rule": alert.rule,
        "reason": alert.reason,
        "value_at_risk": format_money(alert.value_at_risk_minor, alert.currency),
        "currency": alert.currency,
        "segment": alert.segment,
        "tier": alert.tier,
        "merchant_id": alert.merchant_id,
        "last_purchase_at": alert.last_purchase_at,
        "days_since_last_purchase": max(
            0, int(days_between(alert.last_purchase_at, alert.tripped_at))
        ),
    }
    envelope = {
        "version": 1,
        "occurred_at": alert.tripped_at,
        "source": ALERTS_SOURCE,
        "customer_id": alert.customer_id,
    }
    if escalation:
        return AlertEscalated(
            event_id=derived_event_id(alert.alert_id, "alert.escalated"),
            type="alert.escalated",
            data=AlertEscalatedData.model_validate(facts),
            **envelope,
        )
    return AlertRaised(
        event_id=derived_event_id(alert.alert_id, "alert.raised"),
        type="alert.raised",
        data=AlertRaisedData.model_validate({**facts, "status": alert.status.value}),
        **envelope,
    )


def follow_up_event(activity: CustomerActivity) -> FollowUpDue:
    """`follow_up.due`: its id comes from the customer alone, so it exists once per customer.

    Its content depends only on the first purchase (not on what happened since), so a replay
    that raises it at another moment still sends the same event.
    """
    first, due = activity.summary.first_purchase_at, activity.follow_up_due_at
    assert first is not None and due is not None  # claimed rows have both
    return FollowUpDue(
        event_id=derived_event_id(f"follow-up:{activity.customer_id}", "follow_up.due"),
        type="follow_up.due",
        version=1,
        occurred_at=due,
        source=ALERTS_SOURCE,
        customer_id=activity.customer_id,
        data=FollowUpDueData(
            first_purchase_at=first,
            merchant_id=activity.first_merchant_id,
            store_id=activity.first_store_id,
            days_after_first_purchase=max(0, int(days_between(first, due))),
        ),
    )


class AlertScanner:
    """Claims due customers in batches and turns verdicts into alerts and events."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: AlertsClock,
        *,
        batch_size: int = 500,
        alerts_topic: str = Topics.ALERTS,
        interval_seconds: float = 5.0,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.batch_size = batch_size
        self.alerts_topic = alerts_topic
        self.interval_seconds = interval_seconds
        self._stopping = asyncio.Event()

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
        async with self.engine.begin() as conn:
            due = await claim_due_lapse_checks(conn, now, self.batch_size)
            if not due:
                return ScanOutcome()
            ids = [a.customer_id for a in due]
            still_open = await open_alerts(conn, ids)
            book = await load_threshold_book(conn)
            stored = await latest_model(conn)
            model = stored.params if stored else None
            segments = await segments_for(conn, due, now)
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
            outbox = OutboxWriter()
            raised, escalated = await self._apply(conn, decisions, outbox, now)
            await set_next_checks(conn, {d.customer_id: _after(d, now) for d in decisions})
            await outbox.flush(conn)
        return ScanOutcome(len(due), raised, escalated)

    async def _apply(
        self, conn: AsyncConnection, decisions: list[Decision], outbox: OutboxWriter, now: datetime
    ) -> tuple[int, int]:
        new = [d.alert for d in decisions if d.alert is not None and not d.escalate]
        opened = await open_new_alerts(conn, new, now)
        for alert in new:
            if alert.alert_id in opened:
                outbox.emit(self.alerts_topic, alert_event(alert, escalation=False))
        escalated = 0
        for decision in decisions:
            worse = decision.alert
            if worse is not None and decision.escalate and await escalate_alert(conn, worse, now):
                outbox.emit(self.alerts_topic, alert_event(worse, escalation=True))
                escalated += 1
        return len(opened), escalated

    async def scan_follow_up_batch(self, now: datetime) -> ScanOutcome:
        async with self.engine.begin() as conn:
            due = await claim_due_follow_ups(conn, now, self.batch_size)
            outbox = OutboxWriter()
            for activity in due:
                outbox.emit(self.alerts_topic, follow_up_event(activity))
            await mark_follow_ups_raised(conn, [a.customer_id for a in due], now)
            await outbox.flush(conn)
        return ScanOutcome(checked=len(due), follow_ups=len(due))

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Scan until stopped; a database outage waits and retries, nothing is skipped."""
        while not self._stopping.is_set():
            try:
                await self.scan_due()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("alert scanner: transient fault, retrying: %s", exc)
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval_seconds)
            except TimeoutError:
                pass


def _after(decision: Decision, now: datetime) -> datetime | None:
    # By construction a judged customer is next due strictly after `now`; if a bug ever broke
    # that, re-checking the same row forever would stall the scan, so defer it and say so.
    due = decision.next_check_at
    if due is not None and due <= now:
        log.error("customer %s rescheduled into the past (%s)", decision.customer_id, due)
        return now + _RETRY_LATER
    return due
