"""Referral routes for partner apps (a customer's code, who referred a new customer), and
the admin routes of the referral programme (what each side receives)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.rewards.domain.referrals import ReferralProgramme
from services.rewards.referrals.schemas import (
    ProgrammeDocument,
    ProgrammeView,
    ReferralCodeView,
    ReferralRequest,
    ReferralView,
)
from services.rewards.referrals.service import (
    StoredProgramme,
    load_programme,
    programme_view,
    record_referral,
    referral_code_of,
    save_programme,
)
from services.rewards.scopes import Admin, Claim, Read
from services.rewards.uow import request_uow
from services.rewards.vouchers.schemas import CustomerId
from shared.http.guessing import refuse_guessing

router = APIRouter(prefix="/v1", tags=["referrals"])
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get(
    "/customers/{customer_id}/referral-code",
    summary="The customer's referral code to share (created on the first call, then stable)",
)
async def referral_code(request: Request, customer_id: CustomerId, _: Read) -> ReferralCodeView:
    async with request_uow(request) as uow:
        code = await referral_code_of(uow, customer_id)
    return ReferralCodeView(customer_id=customer_id, referral_code=code)


@router.post(
    "/customers/{customer_id}/referral",
    summary="Record who referred this new customer (by the referrer's code)",
    status_code=201,
    responses={409: {"description": "self, circular, already referred, or already purchased"}},
)
async def referral(
    request: Request, customer_id: CustomerId, body: ReferralRequest, principal: Claim
) -> ReferralView:
    async with refuse_guessing(request, principal), request_uow(request) as uow:
        recorded = await record_referral(uow, customer_id, body.code)
    return ReferralView.model_validate(recorded)


@admin_router.get("/referral-programme", summary="What each side of a referral receives")
async def get_programme(request: Request, _: Admin) -> ProgrammeView:
    async with request_uow(request) as uow:
        stored = await load_programme(uow)
    return ProgrammeView.model_validate(programme_view(stored))


@admin_router.put("/referral-programme", summary="Change what each side of a referral receives")
async def put_programme(request: Request, body: ProgrammeDocument, _: Admin) -> ProgrammeView:
    stored = StoredProgramme(
        ReferralProgramme(body.referrer.grant(), body.referee.grant()), body.active
    )
    async with request_uow(request) as uow:
        await save_programme(uow, stored)
    return ProgrammeView.model_validate(programme_view(stored))
