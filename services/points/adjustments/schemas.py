"""Request and response bodies of administrators' adjustments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.points.adjustments.repository import AdjustmentRecord
from services.points.ledger.schemas import MAX_POINTS, BalanceSummary, BodyId, CustomerBody

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
