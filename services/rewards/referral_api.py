"""Referral routes for partner apps, and the admin routes for what rewards hand out:
the referral programme and the reward definitions (voucher validity, merchant binding)."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from sqlalchemy.dialects import postgresql as pg

from services.rewards.admin_api import Admin, Key
from services.rewards.api import Claim, CustomerId, Read, clock, engine
from services.rewards.db import reward_definitions
from services.rewards.domain.grants import Grant, PointsGrant, VoucherGrant
from services.rewards.domain.referrals import ReferralProgramme
from services.rewards.referrals import (
    StoredProgramme,
    load_programme,
    programme_view,
    record_referral,
    referral_code_of,
    save_programme,
)
from shared.contracts.fields import Currency, Identifier, Money, minor_units
from shared.http.guessing import refuse_guessing
from shared.money import format_money


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReferralRequest(_Body):
    code: str = Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9 -]+$")


class ProgrammeSide(_Body):
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


class ProgrammeDocument(_Body):
    referrer: ProgrammeSide
    referee: ProgrammeSide
    active: bool = True


class RewardDefinition(_Body):
    title: str = Field(min_length=1, max_length=200)
    valid_days: Annotated[int, Field(ge=1, le=3650)]
    merchant_id: Identifier | None = None
    # What one voucher is worth: compensation caps count it as money (guarantee_limits).
    value: Money | None = None
    currency: Currency | None = Field(default=None, validate_default=True)

    @field_validator("currency")
    @classmethod
    def _value_has_currency(cls, currency: str | None, info: ValidationInfo) -> str | None:
        value = info.data.get("value")
        if (value is None) != (currency is None):
            raise ValueError("value and currency go together: give both or neither")
        if value is not None and currency is not None:
            minor_units(value, currency)
        return currency

    def stored(self) -> dict[str, Any]:
        """The row's columns: the value in integer minor units."""
        values = self.model_dump(exclude={"value"})
        value, currency = self.value, self.currency
        values["value_minor"] = None if value is None else minor_units(value, str(currency))
        return values


def definition_view(row: Any) -> dict[str, Any]:
    view = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    minor, currency = view.pop("value_minor", None), view.get("currency")
    view["value"] = None if minor is None else format_money(minor, str(currency))
    return view


router = APIRouter(prefix="/v1", tags=["referrals"])
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get(
    "/customers/{customer_id}/referral-code",
    summary="The customer's referral code to share (created on the first call, then stable)",
)
async def referral_code(request: Request, customer_id: CustomerId, _: Read) -> dict[str, Any]:
    async with engine(request).begin() as conn:
        code = await referral_code_of(conn, customer_id)
    return {"customer_id": customer_id, "referral_code": code}


@router.post(
    "/customers/{customer_id}/referral",
    summary="Record who referred this new customer (by the referrer's code)",
    status_code=201,
    responses={409: {"description": "self, circular, already referred, or already purchased"}},
)
async def referral(
    request: Request, customer_id: CustomerId, body: ReferralRequest, principal: Claim
) -> dict[str, Any]:
    async with refuse_guessing(request, principal), engine(request).begin() as conn:
        return await record_referral(conn, customer_id, body.code, clock(request)())


@admin_router.get("/referral-programme", summary="What each side of a referral receives")
async def get_programme(request: Request, _: Admin) -> dict[str, Any]:
    async with engine(request).connect() as conn:
        return programme_view(await load_programme(conn))


@admin_router.put("/referral-programme", summary="Change what each side of a referral receives")
async def put_programme(request: Request, body: ProgrammeDocument, _: Admin) -> dict[str, Any]:
    stored = StoredProgramme(
        ReferralProgramme(body.referrer.grant(), body.referee.grant()), body.active
    )
    async with engine(request).begin() as conn:
        await save_programme(conn, stored)
    return programme_view(stored)


@admin_router.get("/reward-definitions", summary="Every reward definition")
async def definitions(request: Request, _: Admin) -> dict[str, Any]:
    async with engine(request).connect() as conn:
        rows = await conn.execute(sa.select(reward_definitions).order_by("reward_code"))
        return {"rewards": [definition_view(r) for r in rows]}


@admin_router.put(
    "/reward-definitions/{reward_code}",
    summary="Create or change a reward: how long its vouchers last, where they are redeemed",
)
async def put_definition(
    request: Request, reward_code: Key, body: RewardDefinition, _: Admin
) -> dict[str, Any]:
    values = {"reward_code": reward_code, **body.stored()}
    statement = pg.insert(reward_definitions).values(**values)
    async with engine(request).begin() as conn:
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["reward_code"],
                set_={k: statement.excluded[k] for k in values if k != "reward_code"},
            )
        )
    return definition_view(values)
