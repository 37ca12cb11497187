"""Guarantee policy and compensation-limit routes (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.rewards.domain.guarantee_limits import CompensationLimits
from services.rewards.policies.schemas import (
    LimitsDocument,
    LimitsView,
    PoliciesPage,
    PolicyDocument,
    PolicyView,
    StoredPolicy,
)
from services.rewards.policies.service import policy_from_document
from services.rewards.scopes import Admin
from services.rewards.uow import request_uow
from services.rewards.vouchers.schemas import AdminKey, Cursor
from shared.http.pagination import decode_cursor, split_page, text

router = APIRouter(prefix="/v1/admin", tags=["admin"])
_CURSOR = {"merchant_id": text, "promise_kind": text}


@router.get("/policies", summary="Every guarantee policy (paged)")
async def policies(
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page")] = 500,
    cursor: Cursor = None,
) -> PoliciesPage:
    """In (merchant, promise) order; follow `next_cursor` for more."""
    after = None
    if cursor is not None:
        place = decode_cursor(cursor, _CURSOR)
        after = (place["merchant_id"], place["promise_kind"])
    async with request_uow(request) as uow:
        rows = await uow.policies.all_policies(limit + 1, after)
    page, next_cursor = split_page(
        rows,
        limit,
        lambda last: {"merchant_id": last.merchant_id, "promise_kind": last.promise_kind},
    )
    return PoliciesPage(
        policies=[StoredPolicy.model_validate(dict(r._mapping)) for r in page],
        next_cursor=next_cursor,
    )


@router.put("/policies/{merchant_id}/{promise_kind}", summary="Create or replace a policy")
async def put_policy(
    request: Request, merchant_id: AdminKey, promise_kind: AdminKey, body: PolicyDocument, _: Admin
) -> PolicyView:
    tiers = [t.model_dump(exclude_none=True) for t in body.tiers]
    policy = policy_from_document(
        merchant_id,
        promise_kind,
        body.unit,
        tiers,
        body.claim_window_days,
        body.self_reported_max_tier,
    )
    async with request_uow(request) as uow:
        await uow.policies.save_policy(policy)
    return PolicyView.model_validate(
        {"merchant_id": merchant_id, "promise_kind": promise_kind, **body.model_dump()}
    )


@router.put("/limits/{merchant_id}", summary="Compensation caps of a merchant ('*': default)")
async def put_limits(
    request: Request, merchant_id: AdminKey, body: LimitsDocument, _: Admin
) -> LimitsView:
    limits = CompensationLimits(**body.model_dump())
    async with request_uow(request) as uow:
        await uow.policies.save_limits(merchant_id, limits)
    return LimitsView.model_validate({"merchant_id": merchant_id, **body.model_dump()})
