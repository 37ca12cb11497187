"""Manual-review routes (admin): the queue of held compensations, approve, reject."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from services.rewards.guarantee_claims.schemas import Decision
from services.rewards.reviews.schemas import CompensationView, ReviewQueue
from services.rewards.reviews.service import decide_compensation, key_name
from services.rewards.scopes import Admin
from services.rewards.uow import request_uow
from services.rewards.vouchers.schemas import Cursor
from shared.auth import ApiPrincipal
from shared.http.pagination import aware_datetime, decode_cursor, split_page

router = APIRouter(prefix="/v1/admin", tags=["admin"])
_QUEUE_CURSOR: dict[str, Callable[[Any], Any]] = {
    "created_at": aware_datetime,
    "compensation_id": uuid.UUID,
}


@router.get("/reviews", summary="Compensations waiting for a person's decision (paged)")
async def reviews(
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page")] = 200,
    cursor: Cursor = None,
) -> ReviewQueue:
    """Oldest first; follow `next_cursor` for the rest of the queue."""
    after = None
    if cursor is not None:
        place = decode_cursor(cursor, _QUEUE_CURSOR)
        after = (place["created_at"], place["compensation_id"])
    async with request_uow(request) as uow:
        rows = await uow.compensations.in_review_page(limit + 1, after)
    page, next_cursor = split_page(
        rows,
        limit,
        lambda last: {
            "created_at": last.created_at.isoformat(),
            "compensation_id": str(last.compensation_id),
        },
    )
    return ReviewQueue(
        reviews=[CompensationView.of(r._mapping) for r in page], next_cursor=next_cursor
    )


async def _decide(
    request: Request,
    compensation_id: uuid.UUID,
    approve: bool,
    principal: ApiPrincipal,
    note: str | None,
) -> CompensationView:
    async with request_uow(request) as uow:
        actor = await key_name(uow, principal)
        values = await decide_compensation(uow, compensation_id, approve, actor, note)
    return CompensationView.of(values)


@router.post("/reviews/{compensation_id}/approve", summary="Approve and pay a held compensation")
async def approve(
    request: Request, compensation_id: uuid.UUID, body: Decision, principal: Admin
) -> CompensationView:
    return await _decide(request, compensation_id, True, principal, body.text)


@router.post("/reviews/{compensation_id}/reject", summary="Reject a held compensation")
async def reject(
    request: Request, compensation_id: uuid.UUID, body: Decision, principal: Admin
) -> CompensationView:
    return await _decide(request, compensation_id, False, principal, body.text)
