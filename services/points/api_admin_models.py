"""Request and response bodies of the admin API (rules live in `api_rules`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.points.api_models import BalanceSummary
from services.points.api_support import MAX_POINTS, BodyId, CustomerBody, money_text
from services.points.book import ReturnRecord
from services.points.domain.invariants import InvariantViolation, ViolationKind
from services.points.queries import AdjustmentRecord
from shared.money import currency_exponent, is_known_currency

SignedPoints = Annotated[
    int,
    Field(strict=True, ge=-MAX_POINTS, le=MAX_POINTS, description="Signed; never 0"),
]


class AdjustmentIn(BaseModel):
    """A correction by an administrator; the caller's API key is kept as who made it."""

    model_config = ConfigDict(extra="forbid")

    adjustment_id: BodyId = Field(description="Chosen by the caller: applies once per id")
    customer_id: CustomerBody
    points: SignedPoints
    reason: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00]*\S[^\x00]*$")
    merchant_id: BodyId | None = None

    @field_validator("points")
    @classmethod
    def _not_zero(cls, points: int) -> int:
        if points == 0:
            raise ValueError("an adjustment adds or takes at least one point")
        return points


class AdjustmentOut(BaseModel):
    adjustment_id: str
    customer_id: str
    points: int
    reason: str
    actor: str = Field(
        description="The API key that made the adjustment: its name, then its id in brackets"
    )
    merchant_id: str | None
    occurred_at: datetime
    recorded_at: datetime


class AdjustmentResult(AdjustmentOut):
    balance: BalanceSummary


class AdjustmentPage(BaseModel):
    adjustments: list[AdjustmentOut]
    next_cursor: str | None


class MerchantLiabilityOut(BaseModel):
    merchant_id: str | None = Field(description="None: programme-wide credits and adjustments")
    available: int
    pending: int


class LiabilityOut(BaseModel):
    """Outstanding points: what the programme owes, per coalition partner."""

    as_of: datetime
    merchants: list[MerchantLiabilityOut]
    total_available: int
    total_pending: int
    total_debt: int | None = Field(
        description=(
            "Points customers owe back (not attributed to merchants); null for a key bound "
            "to a merchant"
        )
    )


class ParkedReturnOut(BaseModel):
    return_id: str
    order_id: str
    customer_id: str
    merchant_id: str
    occurred_at: datetime
    refunded_amount: str = Field(description="Decimal string in `currency`")
    currency: str
    status: str = Field(description="parked: waiting for its order; rejected: cannot apply")
    rejection: str | None


class ParkedReturnPage(BaseModel):
    returns: list[ParkedReturnOut]
    next_cursor: str | None


class ViolationOut(BaseModel):
    customer_id: str
    kind: ViolationKind
    detail: str


class InvariantReport(BaseModel):
    """The books of the customers checked, and who breaks them."""

    checked_customers: int
    sound: bool = Field(description="True when no checked customer breaks an invariant")
    breaking_customers: list[str]
    violations: list[ViolationOut]
    ledger_out_of_step: list[str] | None = Field(
        description=(
            "First page only: every customer whose stored balance differs from the sum of "
            "their ledger entries, found in one scan over all customers"
        )
    )
    next_cursor: str | None


def adjustment_out(record: AdjustmentRecord) -> AdjustmentOut:
    return AdjustmentOut(
        adjustment_id=record.adjustment_id,
        customer_id=record.customer_id,
        points=record.points,
        reason=record.reason,
        actor=record.actor,
        merchant_id=record.merchant_id,
        occurred_at=record.occurred_at,
        recorded_at=record.recorded_at,
    )


def _amount(minor: int, currency: str) -> str:
    exponent = currency_exponent(currency) if is_known_currency(currency) else 2
    return money_text(minor, exponent)


def parked_return_out(record: ReturnRecord) -> ParkedReturnOut:
    return ParkedReturnOut(
        return_id=record.return_id,
        order_id=record.order_id,
        customer_id=record.customer_id,
        merchant_id=record.merchant_id,
        occurred_at=record.occurred_at,
        refunded_amount=_amount(record.refunded_minor, record.currency),
        currency=record.currency,
        status=record.status,
        rejection=record.rejection,
    )


def violation_out(violation: InvariantViolation) -> ViolationOut:
    return ViolationOut(
        customer_id=violation.customer_id, kind=violation.kind, detail=violation.detail
    )
