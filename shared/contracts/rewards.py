"""Events the rewards service publishes on `loyalty.rewards` that other services act on."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.envelope import EventEnvelope
from shared.contracts.fields import Identifier


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


REWARDS_EVENTS: tuple[type[EventEnvelope], ...] = (PointsCreditRequested,)
