"""Referral bodies: the code a customer shares, a recorded referral, the programme (admin)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from services.rewards.domain.grants import Grant, PointsGrant, VoucherGrant
from services.rewards.vouchers.schemas import Body, Timestamp, View
from shared.contracts.fields import Identifier


class ReferralRequest(Body):
    code: str = Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9 -]+$")


class ProgrammeSide(Body):
    """Exactly one of a voucher for `reward_code`, or `points` credited."""

    reward_code: Identifier | None = None
    points: Annotated[int, Field(gt=0, le=100_000_000)] | None = None

    @model_validator(mode="after")
    def _one_grant(self) -> ProgrammeSide:
        if (self.reward_code is None) == (self.points is None):
            raise ValueError("give exactly one of reward_code and points")
        return self

    def grant(self) -> Grant:
        if self.reward_code is not None:
            return VoucherGrant(self.reward_code)
        return PointsGrant(int(self.points or 0))


class ProgrammeDocument(Body):
    referrer: ProgrammeSide
    referee: ProgrammeSide
    active: bool = True


class ReferralCodeView(View):
    customer_id: str
    referral_code: str


class ReferralView(View):
    customer_id: str
    referred_by: str
    recorded_at: Timestamp


class SideView(View):
    reward_code: str | None
    points: int | None


class ProgrammeView(View):
    """What each side receives (both null, inactive: no programme configured)."""

    active: bool
    referrer: SideView | None
    referee: SideView | None
