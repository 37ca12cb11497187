"""Bodies of a backtest: what to replay, and the scorecards it answers."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.alerts.domain.thresholds import ThresholdOverrides
from services.alerts.lapse.schemas import ResponseModel
from shared.contracts.fields import Identifier


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


class BacktestRuleOut(ResponseModel):
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


class BacktestScoreOut(ResponseModel):
    name: str
    auc: float | None = Field(description="Chance a lapsed customer ranks above a returning one.")


class SuggestedThresholdOut(ResponseModel):
    no_purchase_probability: float
    precision: float
    recall: float
    criterion: str


class BacktestScorecardOut(ResponseModel):
    merchant_id: str = Field(description="'*' for every customer replayed.")
    customers: int
    lapsed: int
    base_rate: float | None
    rules: list[BacktestRuleOut]
    scores: list[BacktestScoreOut]
    suggested_threshold: SuggestedThresholdOut | None


class BacktestModelOut(ResponseModel):
    r: float
    alpha: float
    a: float
    b: float
    time_unit_days: float
    log_likelihood: float
    customers_fitted: int


class BacktestOut(ResponseModel):
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
