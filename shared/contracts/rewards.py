"""Events the rewards service publishes on `loyalty.rewards` (and two on the ops topic).

Commands to the points service (`points.credit_requested`, `points.debit_requested`,
`points.debit_reversal_requested`) carry an id the points service applies once. Facts
for partners and operations (`reward.issued`, `voucher.*`, `compensation.*`,
`refund.instructed`, `claim.escalated`, `compensation.escalated`, `review.overdue`)
have ids derived from their cause, so a replay re-derives the same ids and consumers
deduplicate. Voucher codes never travel on a topic: a partner app reads them through the
authenticated API.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.contracts.envelope import EventEnvelope, derived_event_id
from shared.contracts.fields import (
    Currency,
    Identifier,
    Money,
    check_minor_units,
    implied_by_fast_money,
)

RewardOrigin = Literal["guarantee", "catalogue", "milestone", "referral"]


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class PointsCreditRequestedData(_Data):
    credit_id: Identifier = Field(description="Applied once: a second request with it is a no-op.")
    points: int = Field(strict=True, gt=0, le=100_000_000)
    reason: str = Field(min_length=1, max_length=500, examples=["compensation: dish_wait_time"])
    merchant_id: Identifier | None = Field(
        default=None, description="The partner the credit is attributed to, if any."
    )


class PointsCreditRequested(EventEnvelope):
    """Rewards asks the points service to credit points (compensation or a reward)."""

    type: Literal["points.credit_requested"]
    version: Literal[1]
    data: PointsCreditRequestedData


class PointsDebitRequestedData(_Data):
    debit_id: Identifier = Field(description="The catalogue claim; debited at most once.")
    points: int = Field(strict=True, gt=0, le=100_000_000)
    merchant_id: Identifier = Field(description="Who the points are spent with.")
    reference: str = Field(min_length=1, max_length=200, examples=["catalogue:free-coffee"])


class PointsDebitRequested(EventEnvelope):
    """Saga step 1: rewards asks the points service to spend points for a catalogue claim."""

    type: Literal["points.debit_requested"]
    version: Literal[1]
    data: PointsDebitRequestedData


class PointsDebitReversalRequestedData(_Data):
    debit_id: Identifier
    reason: str = Field(min_length=1, max_length=500)


class PointsDebitReversalRequested(EventEnvelope):
    """Saga compensation: the claim was cancelled after its debit; give the points back."""

    type: Literal["points.debit_reversal_requested"]
    version: Literal[1]
    data: PointsDebitReversalRequestedData


class RewardIssuedData(_Data):
    voucher_id: Identifier
    reward_code: Identifier = Field(examples=["fruit-plate"])
    origin: RewardOrigin
    origin_ref: str = Field(min_length=1, max_length=300, description="Compensation, claim, ...")
    merchant_id: Identifier | None = Field(default=None, description="Redeemable only there.")
    issued_at: AwareDatetime
    expires_at: AwareDatetime


class RewardIssued(EventEnvelope):
    """A voucher was issued to the customer."""

    type: Literal["reward.issued"]
    version: Literal[1]
    data: RewardIssuedData


class VoucherRedeemedData(_Data):
    voucher_id: Identifier
    reward_code: Identifier
    merchant_id: Identifier
    store_id: Identifier | None = None
    redeemed_at: AwareDatetime


class VoucherRedeemed(EventEnvelope):
    """A point of sale redeemed a voucher (once)."""

    type: Literal["voucher.redeemed"]
    version: Literal[1]
    data: VoucherRedeemedData


class VoucherExpiredData(_Data):
    voucher_id: Identifier
    reward_code: Identifier
    expired_at: AwareDatetime


class VoucherExpired(EventEnvelope):
    """A voucher reached its expiry unredeemed."""

    type: Literal["voucher.expired"]
    version: Literal[1]
    data: VoucherExpiredData


class _BreachFacts(_Data):
    compensation_id: Identifier
    merchant_id: Identifier
    order_id: Identifier
    promise_kind: Identifier
    tier: int = Field(ge=1, description="The highest policy tier this compensation reaches.")
    vouchers: list[Identifier] = Field(default_factory=list, description="Reward codes.")
    points: int = Field(ge=0)
    refund_amount: Money
    currency: Currency
    top_up: bool = Field(description="Adds to an earlier compensation of the same breach.")

    @model_validator(mode="after")
    @implied_by_fast_money
    def _precision_fits_currency(self) -> _BreachFacts:
        check_minor_units(self.refund_amount, self.currency)
        return self


class CompensationGrantedData(_BreachFacts):
    decided_by: str = Field(min_length=1, max_length=200, examples=["policy", "admin:kim"])


class CompensationGranted(EventEnvelope):
    """A missed service promise was compensated (automatically or after review)."""

    type: Literal["compensation.granted"]
    version: Literal[1]
    data: CompensationGrantedData


class CompensationReviewRequiredData(_BreachFacts):
    reasons: list[str] = Field(min_length=1, examples=[["customer_refund_cap"]])


class CompensationReviewRequired(EventEnvelope):
    """A compensation over a cap (or for an unknown order) waits for an admin's decision."""

    type: Literal["compensation.review_required"]
    version: Literal[1]
    data: CompensationReviewRequiredData


class RefundInstructedData(_Data):
    compensation_id: Identifier
    merchant_id: Identifier
    order_id: Identifier
    amount: Money
    currency: Currency

    @model_validator(mode="after")
    @implied_by_fast_money
    def _precision_fits_currency(self) -> RefundInstructedData:
        check_minor_units(self.amount, self.currency)
        return self


class RefundInstructed(EventEnvelope):
    """The point of sale must pay this money back to the customer (once per compensation)."""

    type: Literal["refund.instructed"]
    version: Literal[1]
    data: RefundInstructedData


class ClaimEscalatedData(_Data):
    claim_id: Identifier
    merchant_id: Identifier
    order_id: Identifier
    promise_kind: Identifier
    filed_at: AwareDatetime
    decide_by: AwareDatetime


class ClaimEscalated(EventEnvelope):
    """Green channel: a guarantee claim is still undecided 12 hours after filing."""

    type: Literal["claim.escalated"]
    version: Literal[1]
    data: ClaimEscalatedData


class CompensationEscalatedData(_Data):
    compensation_id: Identifier
    merchant_id: Identifier
    order_id: Identifier
    promise_kind: Identifier
    tier: int = Field(ge=1)
    reasons: list[str] = Field(min_length=1, examples=[["self_reported"]])
    held_since: AwareDatetime
    decide_by: AwareDatetime


class CompensationEscalated(EventEnvelope):
    """Green channel: a compensation held for review is still undecided after 12 hours."""

    type: Literal["compensation.escalated"]
    version: Literal[1]
    data: CompensationEscalatedData


class ReviewOverdueData(_Data):
    subject: Literal["claim", "compensation"] = Field(
        description="A guarantee claim, or a compensation held for review."
    )
    subject_id: Identifier = Field(description="The claim id or the compensation id.")
    merchant_id: Identifier
    order_id: Identifier
    promise_kind: Identifier
    since: AwareDatetime = Field(description="When the claim was filed or the hold began.")
    decide_by: AwareDatetime = Field(description="The 24-hour deadline that passed.")
    reasons: list[str] = Field(default_factory=list, examples=[["order_unknown"]])


class ReviewOverdue(EventEnvelope):
    """Green channel: a claim or held compensation is still undecided 24 hours on (once each)."""

    type: Literal["review.overdue"]
    version: Literal[1]
    data: ReviewOverdueData


REWARDS_EVENTS: tuple[type[EventEnvelope], ...] = (
    PointsCreditRequested,
    PointsDebitRequested,
    PointsDebitReversalRequested,
    RewardIssued,
    VoucherRedeemed,
    VoucherExpired,
    CompensationGranted,
    CompensationReviewRequired,
    RefundInstructed,
    ClaimEscalated,
    CompensationEscalated,
    ReviewOverdue,
)


E = TypeVar("E", bound=EventEnvelope)


def rewards_envelope(
    model: type[E], customer_id: str, cause: uuid.UUID | str, at: datetime, data: BaseModel
) -> E:
    """An event of `model` from the rewards service, its id derived from `cause` and its type.

    Re-deriving an event from the same cause (a replay, a retried job) gives the same id,
    so downstream consumers deduplicate it.
    """
    event_type = model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    return model.model_validate(rewards_envelope_fields(event_type, customer_id, cause, at, data))


def rewards_envelope_fields(
    event_type: str, customer_id: str, cause: Any, at: datetime, data: Any
) -> dict[str, Any]:
    """The envelope fields of a rewards event, as `rewards_envelope` validates them (and as
    the compensation path assembles them without validating, when every field is known to
    be within the contract)."""
    return {
        "event_id": derived_event_id(cause, event_type),
        "type": event_type,
        "version": 1,
        "occurred_at": at,
        "source": "rewards",
        "customer_id": customer_id,
        "data": data,
    }
