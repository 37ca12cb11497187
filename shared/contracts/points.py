"""Events the points service publishes on `loyalty.points`.

Every event carries the account as it stands right after the change (`available`,
`pending`, `debt`) and the running totals downstream services need without keeping
their own books: `lifetime_earned`, `purchase_count`, `first_purchase` and `tier`.
`available` is net of debt, so it is negative when a return reversed points the
customer had already spent.

Event ids are derived from the cause (`derived_event_id`), so processing the same
cause again re-derives the same id and consumers deduplicate it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.envelope import EventEnvelope
from shared.contracts.fields import Currency, Identifier, Money


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class TierName(StrEnum):
    """Programme levels, lowest first."""

    MEMBER = "member"
    SILVER = "silver"
    GOLD = "gold"
    PLATINUM = "platinum"


class TierChangeReason(StrEnum):
    QUALIFIED = "qualified"  # a purchase met a higher tier's thresholds
    YEARLY_REVIEW = "yearly_review"  # the yearly review moved the customer (down at most one)


class AccountSnapshot(_Data):
    """The account right after the change this event reports."""

    available: int = Field(description="Redeemable now, net of debt (negative when in debt).")
    pending: int = Field(ge=0, description="Still inside a merchant's return window.")
    debt: int = Field(ge=0, description="Points reversed after the customer had spent them.")
    lifetime_earned: int = Field(description="Accruals and credits, net of reversals.")
    purchase_count: int = Field(ge=0, description="Purchases ever recorded (returns keep them).")
    first_purchase: bool = Field(default=False, description="This event is the first purchase.")
    tier: TierName


class PointsAccruedData(AccountSnapshot):
    order_id: Identifier
    merchant_id: Identifier
    points: int = Field(ge=0, description="0 when the order earned nothing (still counted).")
    pending_until: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    campaign_ids: list[str] = Field(default_factory=list)
    capped: bool = Field(default=False, description="The daily earning cap cut this order.")


class PointsReversedData(AccountSnapshot):
    order_id: Identifier
    return_id: Identifier
    merchant_id: Identifier
    points: int = Field(gt=0, description="Points taken back by this return.")
    order_points_reversed: int = Field(ge=0, description="All returns of the order so far.")


class PointsRedeemedData(AccountSnapshot):
    redemption_id: Identifier
    merchant_id: Identifier
    reference: str = Field(min_length=1, max_length=200)
    points: int = Field(gt=0)


class PointsRedemptionCancelledData(AccountSnapshot):
    redemption_id: Identifier
    merchant_id: Identifier
    points: int = Field(gt=0)


class PointsExpiredData(AccountSnapshot):
    lot_id: Identifier
    points: int = Field(gt=0)
    merchant_id: Identifier | None = None
    expired_at: AwareDatetime


class PointsAdjustedData(AccountSnapshot):
    adjustment_id: Identifier
    points: int = Field(description="Signed: positive adds points, negative takes them.")
    reason: str = Field(min_length=1, max_length=500)
    actor: str = Field(min_length=1, max_length=200)
    merchant_id: Identifier | None = None


class PointsCreditedData(AccountSnapshot):
    credit_id: Identifier
    points: int = Field(gt=0)
    reason: str = Field(min_length=1, max_length=500)
    merchant_id: Identifier | None = None


class TierChangedData(AccountSnapshot):
    previous_tier: TierName
    reason: TierChangeReason
    qualifying_purchases: int = Field(ge=0, description="Purchases in the rolling window.")
    qualifying_spend: Money = Field(description="Net spend in the window.")
    currency: Currency = Field(description="The programme currency of qualifying_spend.")
    review_at: AwareDatetime | None = Field(default=None, description="Set for a yearly review.")


class PointsDebitedData(AccountSnapshot):
    debit_id: Identifier = Field(description="The rewards catalogue claim this debit pays for.")
    redemption_id: Identifier
    merchant_id: Identifier
    points: int = Field(gt=0)


class PointsDebitRejectedData(AccountSnapshot):
    debit_id: Identifier
    points: int | None = Field(
        default=None,
        gt=0,
        description=(
            "What was asked for; null when the answer is to a reversal of a debit this "
            "service never received (reason `not_debited`)."
        ),
    )
    reason: str = Field(
        min_length=1, max_length=100, examples=["insufficient_points", "not_debited"]
    )


class PointsDebitReversedData(AccountSnapshot):
    debit_id: Identifier
    redemption_id: Identifier
    points: int = Field(gt=0, description="Points given back, with their original expiry.")


class PointsSettledData(AccountSnapshot):
    order_id: Identifier
    merchant_id: Identifier
    points: int = Field(ge=0, description="The order's points that stayed: earned less reversed.")
    amount: Money = Field(description="What stayed of the order's amount after its returns.")
    currency: Currency = Field(description="The programme currency of amount.")
    fully_returned: bool = Field(description="Every unit of the order came back.")
    settled_lifetime_points: int = Field(
        ge=0, description="The points of every settled order of the customer, this one included."
    )
    settled_purchase_count: int = Field(
        ge=0, description="Settled orders of the customer not fully returned, this one included."
    )
    first_settled_purchase: bool = Field(
        description=(
            "True exactly once per customer: the first order to settle without being "
            "fully returned."
        )
    )


class PointsAccrued(EventEnvelope):
    """A purchase was recorded: its points (maybe 0) are pending until its return window ends."""

    type: Literal["points.accrued"]
    version: Literal[1]
    data: PointsAccruedData


class PointsSettled(EventEnvelope):
    """An order's return window ended: what stayed of it now counts for tiers and rewards.

    Tiers, milestones and referral rewards count a purchase only from this event on, so
    buying and returning within the window earns none of them.
    """

    type: Literal["points.settled"]
    version: Literal[1]
    data: PointsSettledData


class PointsReversed(EventEnvelope):
    """A return took back part of an order's points (from pending first, then available)."""

    type: Literal["points.reversed"]
    version: Literal[1]
    data: PointsReversedData


class PointsRedeemed(EventEnvelope):
    """A partner app spent available points."""

    type: Literal["points.redeemed"]
    version: Literal[1]
    data: PointsRedeemedData


class PointsRedemptionCancelled(EventEnvelope):
    """A redemption was cancelled; its points came back with their original expiry."""

    type: Literal["points.redemption_cancelled"]
    version: Literal[1]
    data: PointsRedemptionCancelledData


class PointsExpired(EventEnvelope):
    """What was left of one lot expired."""

    type: Literal["points.expired"]
    version: Literal[1]
    data: PointsExpiredData


class PointsAdjusted(EventEnvelope):
    """An administrator added or removed points, with a reason."""

    type: Literal["points.adjusted"]
    version: Literal[1]
    data: PointsAdjustedData


class PointsCredited(EventEnvelope):
    """A credit requested by rewards (compensation, reward) was applied, available at once."""

    type: Literal["points.credited"]
    version: Literal[1]
    data: PointsCreditedData


class TierChanged(EventEnvelope):
    """The customer's tier moved (up when a purchase qualified, or at the yearly review)."""

    type: Literal["tier.changed"]
    version: Literal[1]
    data: TierChangedData


class PointsDebited(EventEnvelope):
    """Saga: the points a rewards claim asked for were spent (reply to points.debit_requested)."""

    type: Literal["points.debited"]
    version: Literal[1]
    data: PointsDebitedData


class PointsDebitRejected(EventEnvelope):
    """Saga: the points a rewards claim asked for could not be spent; nothing was taken."""

    type: Literal["points.debit_rejected"]
    version: Literal[1]
    data: PointsDebitRejectedData


class PointsDebitReversed(EventEnvelope):
    """Saga compensation: a claim's debit was given back (reply to a reversal request)."""

    type: Literal["points.debit_reversed"]
    version: Literal[1]
    data: PointsDebitReversedData


POINTS_EVENTS: tuple[type[EventEnvelope], ...] = (
    PointsAccrued,
    PointsSettled,
    PointsReversed,
    PointsRedeemed,
    PointsRedemptionCancelled,
    PointsExpired,
    PointsAdjusted,
    PointsCredited,
    TierChanged,
    PointsDebited,
    PointsDebitRejected,
    PointsDebitReversed,
)
