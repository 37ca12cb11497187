"""Request and response bodies of partner redemptions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.points.ledger.schemas import BalanceSummary, BodyId, Points, summary
from services.points.redemptions.service import RedemptionOutcome


class RedemptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: Points
    merchant_id: BodyId
    reference: BodyId = Field(description="The partner's own reference (basket, order...)")


class RedemptionOut(BaseModel):
    redemption_id: str
    customer_id: str
    points: int
    merchant_id: str
    reference: str
    status: Literal["completed", "cancelled"]
    occurred_at: datetime
    cancelled_at: datetime | None
    balance: BalanceSummary = Field(description="The customer's balance as of this answer")


def redemption_out(outcome: RedemptionOutcome) -> RedemptionOut:
    return RedemptionOut(
        redemption_id=outcome.redemption_id,
        customer_id=outcome.customer_id,
        points=outcome.points,
        merchant_id=outcome.merchant_id,
        reference=outcome.reference,
        status="cancelled" if outcome.cancelled_at is not None else "completed",
        occurred_at=outcome.occurred_at,
        cancelled_at=outcome.cancelled_at,
        balance=summary(outcome.balance),
    )
