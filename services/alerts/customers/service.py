"""One customer as operations see them: summary, rhythm, model scores (the no-purchase
probability the model rule alerts on; P(alive) as a diagnostic), segment, value at risk.

Computed on request from the stored summary, the latest model and the thresholds in force, at
the service's "now" (the configured clock; wall time before event time has started), so it
always agrees with what the scanner would decide at that moment.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from services.alerts.customers.schemas import (
    ActivitySummaryOut,
    CustomerActivityOut,
    ModelViewOut,
    OpenAlertRef,
    RhythmOut,
    SegmentOut,
)
from services.alerts.domain.activity import ActivitySummary, days_between
from services.alerts.domain.bgnbd import expected_purchases, summary_to_rfm
from services.alerts.domain.lapse import (
    current_alive_probability,
    current_no_purchase_probability,
    rhythm_silence,
    rhythm_variation,
)
from services.alerts.domain.records import CustomerActivity, StoredModel
from services.alerts.domain.segments import customer_value_at_risk_minor
from services.alerts.domain.thresholds import Thresholds
from services.alerts.segments.service import segments_for
from services.alerts.uow import AlertsUnitOfWork
from shared.auth import ApiPrincipal
from shared.errors import Forbidden, NotFound
from shared.money import format_money


async def customer_activity_view(
    uow: AlertsUnitOfWork, customer_id: str, principal: ApiPrincipal
) -> CustomerActivityOut:
    """The view at `uow.now`; a key bound to a merchant sees only customers who bought there."""
    activity = await _activity_visible_to(uow, customer_id, principal)
    now = uow.now
    book = await uow.thresholds.book()
    thresholds = book.for_customer(activity.home_merchant_id, activity.main_category)
    stored = await uow.models.latest()
    segment = (await segments_for(uow.segments, [activity], now))[customer_id]
    open_alert = (await uow.alerts.open_for([customer_id])).get(customer_id)
    summary = activity.summary
    value_at_risk = None
    if activity.currency is not None:
        minor = customer_value_at_risk_minor(
            summary, now, horizon=thresholds.risk_horizon, model=stored.params if stored else None
        )
        value_at_risk = format_money(minor, activity.currency)
    return CustomerActivityOut(
        customer_id=customer_id,
        as_of=now,
        summary=_summary(activity),
        rhythm=_rhythm(summary, thresholds, now),
        model=_model_view(summary, stored, thresholds, now),
        segment=SegmentOut(segment=segment.value, merchant_id=activity.home_merchant_id),
        value_at_risk=value_at_risk,
        open_alert=OpenAlertRef(alert_id=open_alert.alert_id, status=open_alert.status.value)
        if open_alert
        else None,
        next_check_at=activity.next_check_at,
        follow_up_due_at=activity.follow_up_due_at,
        follow_up_raised_at=activity.follow_up_raised_at,
    )


async def _activity_visible_to(
    uow: AlertsUnitOfWork, customer_id: str, principal: ApiPrincipal
) -> CustomerActivity:
    """The customer's activity: 403 for a key bound to a merchant they never bought at, 404
    when nothing is known of them (in that order, as before the unit of work)."""
    activity = await uow.activities.get(customer_id)
    bound = principal.merchant_id
    if activity is not None and bound is not None and bound not in activity.summary.merchant_ids:
        raise Forbidden(
            "this customer has not bought at the merchant this API key is bound to",
            code="merchant_mismatch",
            merchant_id=bound,
        )
    if activity is None:
        raise NotFound(
            f"no activity known for customer {customer_id}",
            code="customer_not_found",
            customer_id=customer_id,
        )
    return activity


def _money(minor: int, currency: str | None) -> str | None:
    return format_money(minor, currency) if currency is not None else None


def _summary(activity: CustomerActivity) -> ActivitySummaryOut:
    summary, currency = activity.summary, activity.currency
    bought = summary.has_purchased
    return ActivitySummaryOut(
        first_purchase_at=summary.first_purchase_at,
        last_purchase_at=summary.last_purchase_at,
        purchase_count=summary.purchase_count,
        visit_count=summary.visit_count,
        spend=_money(summary.spend_minor, currency) if bought else None,
        average_order_value=_money(summary.average_order_value_minor, currency) if bought else None,
        currency=currency,
        merchant_ids=sorted(summary.merchant_ids),
        home_merchant_id=activity.home_merchant_id,
        main_category=activity.main_category,
        tier=activity.tier,
    )


def _finite(value: float | None, digits: int = 4) -> float | None:
    return round(value, digits) if value is not None and math.isfinite(value) else None


def _rhythm(summary: ActivitySummary, thresholds: Thresholds, now: datetime) -> RhythmOut:
    mean, variance = summary.mean_gap_days, summary.gap_variance_days
    silence = rhythm_silence(summary, thresholds.rules)
    last = summary.last_purchase_at
    return RhythmOut(
        mean_gap_days=_finite(mean),
        gap_stddev_days=_finite(math.sqrt(variance) if variance is not None else None),
        gaps_measured=summary.gaps.count,
        days_since_last_purchase=_finite(max(0.0, days_between(last, now)) if last else None),
        gap_variation=_finite(rhythm_variation(summary) if summary.gaps.count > 1 else None),
        flagged_after_days=_finite(silence / timedelta(days=1) if silence else None),
    )


def _model_view(
    summary: ActivitySummary, stored: StoredModel | None, thresholds: Thresholds, now: datetime
) -> ModelViewOut | None:
    if stored is None:
        return None
    model, horizon, model_horizon = (
        stored.params,
        thresholds.risk_horizon,
        thresholds.rules.model_horizon,
    )
    alive = expected = quiet = None
    first, last = summary.first_purchase_at, summary.last_purchase_at
    if first is not None and last is not None:
        alive = current_alive_probability(summary, now, model)
        quiet = current_no_purchase_probability(summary, now, model, model_horizon)
        rfm = summary_to_rfm(first, last, summary.visit_count, now, unit_days=model.unit_days)
        expected = float(expected_purchases(model, horizon / model.time_unit, *rfm))
    return ModelViewOut(
        fit_id=stored.fit_id,
        alive_probability=_finite(alive),
        no_purchase_probability=_finite(quiet),
        no_purchase_horizon_days=model_horizon / timedelta(days=1),
        expected_purchases=_finite(expected),
        horizon_days=horizon / timedelta(days=1),
    )
