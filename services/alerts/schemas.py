"""Request and response bodies of the alerts HTTP API (the OpenAPI document is built from them).

Money leaves as a decimal string with its currency (`"771.43"`, `"EUR"`), never a JSON number;
times are RFC 3339 with an offset. Durations are whole or fractional days, named `_days`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.alerts.invariants import ViolationKind
from services.alerts.thresholds import ThresholdOverrides, ThresholdScope
from shared.contracts.fields import Identifier

MoneyText = Annotated[str, Field(pattern=r"^\d+(\.\d+)?$", examples=["771.43"])]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class AlertState(StrEnum):
    """Open alerts wait for a person (or a purchase); closed ones were answered by a purchase."""

    OPEN = "open"
    CLOSED = "closed"
    ALL = "all"


class Acknowledgement(_Out):
    at: AwareDatetime
    by: str = Field(
        description="The name of the API key that acknowledged (who holds it); for alerts"
        " acknowledged before the audit fix, the name the caller gave."
    )
    key_id: str | None = Field(default=None, description="The API key they used.")
    note: str | None = None
    claimed_by: str | None = Field(
        default=None, description="Who the caller said they were (their words, unverified)."
    )


class AlertOut(_Out):
    alert_id: uuid.UUID
    customer_id: str
    kind: Literal["lapse"]
    status: Literal["at_risk", "lapsed"]
    rule: Literal["inactivity", "own_rhythm", "alive_probability", "no_purchase_probability"]
    reason: str = Field(examples=["usually buys every 7 days; last purchase 24 days ago"])
    value_at_risk: MoneyText = Field(
        description="Average order value x purchases expected to be lost over the horizon."
    )
    currency: str = Field(examples=["EUR"])
    segment: Literal["A", "B", "C"]
    tier: str | None = None
    merchant_id: str | None = None
    last_purchase_at: AwareDatetime
    tripped_at: AwareDatetime = Field(description="When the rule tripped for this status.")
    opened_at: AwareDatetime = Field(description="When a scanner noticed.")
    escalated_at: AwareDatetime | None = None
    closed_at: AwareDatetime | None = Field(
        default=None, description="Set when a purchase answered the alert."
    )
    open: bool
    acknowledgement: Acknowledgement | None = None


class AlertPage(_Out):
    items: list[AlertOut]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last page."
    )


class AcknowledgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Who is acknowledging, in the caller's words: kept as `claimed_by`; the"
        " record's `by` is the API key's name.",
    )
    note: str = Field(
        min_length=1,
        max_length=2000,
        examples=["called; she moved house, will shop at the new store"],
    )


class ActivitySummaryOut(_Out):
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


class RhythmOut(_Out):
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


class ModelViewOut(_Out):
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


class SegmentOut(_Out):
    segment: Literal["A", "B", "C"]
    merchant_id: str | None


class OpenAlertRef(_Out):
    alert_id: uuid.UUID
    status: Literal["at_risk", "lapsed"]


class CustomerActivityOut(_Out):
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


class ThresholdValues(_Out):
    """Thresholds in force after merging default <- category <- merchant."""

    inactivity_window_days: float
    rhythm_multiple: float
    rhythm_min_visits: int
    rhythm_max_variation: float = Field(
        description="Own rhythm only for gaps this regular (standard deviation / mean)."
    )
    at_risk_alive_probability: float = Field(description="Diagnostic only: P(alive) never alerts.")
    lapsed_alive_probability: float
    at_risk_no_purchase_probability: float
    lapsed_no_purchase_probability: float
    model_horizon_days: float
    enabled_rules: list[str]
    lapsed_multiple: float
    follow_up_days: float
    risk_horizon_days: float


class ThresholdScopeOut(_Out):
    scope: ThresholdScope
    scope_id: str | None
    settings: dict[str, bool | int | float] = Field(
        description="Only what this scope changes (absent: inherited).",
        examples=[{"inactivity_window_days": 30}],
    )
    effective: ThresholdValues = Field(description="This scope merged over the default.")
    updated_at: datetime | None = None


class ThresholdsOut(_Out):
    built_in: ThresholdValues
    scopes: list[ThresholdScopeOut]


class ThresholdsPut(BaseModel):
    """Replace what one scope overrides (send `{}` as settings to inherit everything)."""

    model_config = ConfigDict(extra="forbid")

    scope: ThresholdScope
    scope_id: Identifier | None = Field(
        default=None, description="The merchant or category id; absent for the default scope."
    )
    settings: ThresholdOverrides

    @model_validator(mode="after")
    def _scope_id_matches_scope(self) -> ThresholdsPut:
        if self.scope is ThresholdScope.DEFAULT and self.scope_id is not None:
            raise ValueError("the default scope takes no scope_id")
        if self.scope is not ThresholdScope.DEFAULT and self.scope_id is None:
            raise ValueError(f"a {self.scope.value} scope needs its scope_id")
        return self


class ModelOut(_Out):
    fit_id: int
    r: float
    alpha: float
    a: float
    b: float
    time_unit: str = Field(examples=["week"], description="The unit alpha is expressed in.")
    time_unit_days: float
    log_likelihood: float
    customers_fitted: int
    as_of: AwareDatetime = Field(description="The 'now' customer ages were measured at.")
    fitted_at: AwareDatetime
    checks_rescheduled_at: AwareDatetime | None = Field(
        default=None,
        description="When every pending lapse check was moved to this fit; null while the"
        " background job is still doing it.",
    )


class InvariantViolationOut(_Out):
    customer_id: str
    kind: ViolationKind
    detail: str


class InvariantReport(_Out):
    """The customers checked on this page, and who breaks an invariant (as points reports)."""

    checked_customers: int
    sound: bool = Field(description="True when nothing in the checked range breaks an invariant")
    breaking_customers: list[str]
    violations: list[InvariantViolationOut]
    next_cursor: str | None = Field(description="Continue with this cursor; null on the last page")


class ProblemOut(BaseModel):
    """An `application/problem+json` error (RFC 9457); branch on `code`, show `detail`."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None


class BacktestRequest(BaseModel):
    """Replay the purchases known at `as_of`; compare with the `horizon_days` after it."""

    model_config = ConfigDict(extra="forbid")

    as_of: AwareDatetime
    horizon_days: int = Field(ge=1, le=3650, examples=[90])
    merchant_id: Identifier | None = Field(
        default=None, description="Only customers who bought there (forced for a bound key)."
    )
    settings: ThresholdOverrides | None = Field(
        default=None,
        description="Threshold changes to try on top of those in force (nothing is stored).",
    )


class BacktestRuleOut(_Out):
    name: str
    enabled: bool
    flagged: int
    lapsed_flagged: int
    precision: float | None
    recall: float | None
    lift: float | None = Field(description="Precision over the base rate; above 1 beats chance.")
    value_recall: float | None = Field(
        description="Share of the lapsed customers' spend so far that the rule flagged."
    )


class BacktestScoreOut(_Out):
    name: str
    auc: float | None = Field(description="Chance a lapsed customer ranks above a returning one.")


class SuggestedThresholdOut(_Out):
    no_purchase_probability: float
    precision: float
    recall: float
    criterion: str


class BacktestScorecardOut(_Out):
    merchant_id: str = Field(description="'*' for every customer replayed.")
    customers: int
    lapsed: int
    base_rate: float | None
    rules: list[BacktestRuleOut]
    scores: list[BacktestScoreOut]
    suggested_threshold: SuggestedThresholdOut | None


class BacktestModelOut(_Out):
    r: float
    alpha: float
    a: float
    b: float
    time_unit_days: float
    log_likelihood: float
    customers_fitted: int


class BacktestOut(_Out):
    as_of: AwareDatetime
    horizon_days: float
    model: BacktestModelOut | None = Field(description="BG/NBD refitted on what was known then.")
    hindsight_ceiling_auc: float | None = Field(
        default=None,
        description="AUC of a logistic regression fitted on the outcome itself (recency,"
        " frequency, age, spend): a practical ceiling for any score that cannot see the future.",
    )
    overall: BacktestScorecardOut
    by_merchant: list[BacktestScorecardOut] = Field(description="By each customer's home merchant.")
