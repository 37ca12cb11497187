"""Guarantee-claim routes: a customer's complaint that a promise was missed, reading it,
and (admin) closing one still waiting for an order that was never recorded."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from services.rewards.guarantee_claims.schemas import (
    Decision,
    GuaranteeClaimRequest,
    GuaranteeClaimView,
)
from services.rewards.guarantee_claims.service import (
    ClaimFiling,
    GuaranteeClaimNotFound,
    file_claim,
    reject_waiting_claim,
    stored_claim,
)
from services.rewards.reviews.service import key_name
from services.rewards.scopes import Admin, File, Read
from services.rewards.uow import request_uow
from services.rewards.vouchers.schemas import CustomerId
from shared.http.security import ensure_merchant

router = APIRouter(prefix="/v1", tags=["rewards"])
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/customers/{customer_id}/guarantee-claims",
    summary="A customer's complaint that a promise was missed (same policy as incidents)",
    status_code=201,
)
async def file_guarantee_claim(
    request: Request, customer_id: CustomerId, body: GuaranteeClaimRequest, principal: File
) -> GuaranteeClaimView:
    ensure_merchant(principal, body.merchant_id)
    filing = ClaimFiling(
        customer_id,
        body.merchant_id,
        body.order_id,
        body.promise_kind,
        body.measured.value,
        body.measured.unit,
        body.order_amount,
        body.currency,
    )
    async with request_uow(request) as uow:
        row = await file_claim(uow, filing)
    return GuaranteeClaimView.of(row)


@router.get("/guarantee-claims/{claim_id}", summary="A guarantee claim and its decision")
async def get_guarantee_claim(
    request: Request, claim_id: uuid.UUID, principal: Read
) -> GuaranteeClaimView:
    """A key bound to a merchant reads only the claims filed with it; others answer 404."""
    async with request_uow(request) as uow:
        row = await stored_claim(uow, claim_id)
    if not principal.may_act_for(row.merchant_id):
        raise GuaranteeClaimNotFound(f"no guarantee claim {claim_id}")
    return GuaranteeClaimView.of(row)


@admin_router.post(
    "/guarantee-claims/{claim_id}/reject",
    summary="Close a guarantee claim still waiting for an order that was never recorded",
)
async def reject_claim(
    request: Request, claim_id: uuid.UUID, body: Decision, principal: Admin
) -> GuaranteeClaimView:
    async with request_uow(request) as uow:
        actor = await key_name(uow, principal)
        row = await reject_waiting_claim(uow, claim_id, actor, body.text)
    return GuaranteeClaimView.of(row)
