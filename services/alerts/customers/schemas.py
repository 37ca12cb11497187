"""The body of one customer's activity view (summary, rhythm, model scores, segment)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, Field

from services.alerts.lapse.schemas import MoneyText, ResponseModel


class ActivitySummaryOut(ResponseModel):
    first_purchase_at: AwareDatetime | None
    last_purchase_at: AwareDatetime | None
    purchase_count: int
    visit_count: int
    spend: MoneyText | None = Field(description="Net of returns; null before any purchase.")
    average_order_value: MoneyText | None
    currency: str | None
    merchant_ids: list[str]
    home_merchant_id: str | None = Field(description="Where the customer spends most (net).")
    main_category: str | None
    tier: str | None


class RhythmOut(ResponseModel):
    mean_gap_days: float | None = Field(description="Mean days between visits.")
    gap_stddev_days: float | None
    gaps_measured: int
    gap_variation: float | None = Field(
        default=None,
        description="Standard deviation / mean of the gaps: above `rhythm_max_variation`"
        " there is no rhythm to miss.",
    )
    days_since_last_purchase: float | None
    flagged_after_days: float | None = Field(
        description="Silence after which the own-rhythm rule puts the customer at risk;"
        " null when the customer has no regular rhythm (or the rule is off)."
    )


class ModelViewOut(ResponseModel):
    fit_id: int
    alive_probability: float | None = Field(
        description="P(alive) now under BG/NBD: a diagnostic (1 for every one-time buyer)."
    )
    no_purchase_probability: float | None = Field(
        default=None,
        description="BG/NBD probability of no purchase within `no_purchase_horizon_days`:"
        " what the model rule alerts on.",
    )
    no_purchase_horizon_days: float | None = None
    expected_purchases: float | None = Field(
        description="Purchases expected over the risk horizon if nothing else is known."
    )
    horizon_days: float


class SegmentOut(ResponseModel):
    segment: Literal["A", "B", "C"]
    merchant_id: str | None


class OpenAlertRef(ResponseModel):
    alert_id: uuid.UUID
    status: Literal["at_risk", "lapsed"]


class CustomerActivityOut(ResponseModel):
    customer_id: str
    as_of: AwareDatetime = Field(description="The service's 'now' the figures are computed at.")
    summary: ActivitySummaryOut
    rhythm: RhythmOut
    model: ModelViewOut | None = Field(description="Null until a model has been fitted.")
    segment: SegmentOut
    value_at_risk: MoneyText | None
    open_alert: OpenAlertRef | None
    next_check_at: AwareDatetime | None
    follow_up_due_at: AwareDatetime | None
    follow_up_raised_at: AwareDatetime | None
