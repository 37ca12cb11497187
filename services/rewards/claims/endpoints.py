"""Catalogue-claim routes: claim an item (spends points, issues a voucher), read a claim."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.rewards.claims.schemas import ClaimRequest, ClaimView
from services.rewards.claims.service import SETTLED, ClaimNotFound, may_see_claim, request_claim
from services.rewards.scopes import Claim, Read
from services.rewards.uow import RewardsUnitOfWork, request_uow
from services.rewards.vouchers.endpoints import voucher_view
from services.rewards.vouchers.schemas import CustomerId
from shared.errors import Conflict

router = APIRouter(prefix="/v1", tags=["rewards"])


async def claim_view(uow: RewardsUnitOfWork, claim: Any) -> ClaimView:
    """A claim as partner apps see it, with its voucher once issued."""
    voucher = None
    if claim.voucher_id is not None:
        voucher = voucher_view(await uow.vouchers.by_id(claim.voucher_id), uow.now)
    return ClaimView(
        claim_id=str(claim.claim_id),
        item_id=claim.item_id,
        customer_id=claim.customer_id,
        points=claim.points,
        state=claim.state,
        reason=claim.reason,
        settled=claim.state in SETTLED,
        created_at=claim.created_at,
        updated_at=claim.updated_at,
        voucher=voucher,
    )


@router.post(
    "/customers/{customer_id}/claims",
    summary="Claim a catalogue item: spends points, issues a voucher (waits up to ~2 s)",
    status_code=201,
    response_model=ClaimView,
    responses={202: {"model": ClaimView, "description": "still in progress; poll the Location"}},
)
async def claim_item(
    request: Request, customer_id: CustomerId, body: ClaimRequest, principal: Claim
) -> JSONResponse:
    async with request_uow(request) as uow:
        row = await request_claim(
            uow, customer_id, body.item_id, body.idempotency_key, principal.merchant_id
        )
    view = await _wait_for_outcome(request, row.claim_id)
    location = f"/v1/claims/{view.claim_id}"
    content = view.model_dump(mode="json")
    if not view.settled:
        return JSONResponse(content, status_code=202, headers={"Location": location})
    if view.state == "issued":
        return JSONResponse(content, status_code=201, headers={"Location": location})
    raise Conflict(
        f"the claim was not fulfilled: {view.reason or view.state}",
        code=f"claim_{view.state}",
        claim_id=view.claim_id,
        reason=view.reason,
    )


async def _wait_for_outcome(request: Request, claim_id: uuid.UUID) -> ClaimView:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + request.app.state.settings.claim_wait_seconds
    while True:
        async with request_uow(request) as uow:
            view = await claim_view(uow, await uow.claims.get(claim_id))
        if view.settled or loop.time() >= deadline:
            return view
        await asyncio.sleep(0.05)


@router.get("/claims/{claim_id}", summary="A catalogue claim's state and voucher")
async def get_claim(request: Request, claim_id: uuid.UUID, principal: Read) -> ClaimView:
    async with request_uow(request) as uow:
        row = await uow.claims.get(claim_id)
        if row is None or not may_see_claim(principal.merchant_id, row):
            raise ClaimNotFound(f"no claim {claim_id}")
        return await claim_view(uow, row)
