"""Admin routes of adjustments (scope `admin`). Who made one is the caller's API key (its
name and id, read from the key itself, never from the body), kept with the change.

A key bound to a merchant adjusts for its merchant only and only adds points (taking
points from the coalition account needs an unbound key), and sees only its merchant's
adjustments.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from services.points.adjustments.schemas import (
    AdjustmentIn,
    AdjustmentPage,
    AdjustmentResult,
    adjustment_out,
)
from services.points.adjustments.service import (
    Adjustment,
    actor_of,
    adjust_points,
    adjustments_page,
)
from services.points.ledger.schemas import (
    OptionalCustomerQuery,
    decode_cursor,
    encode_cursor,
    problems,
    summary,
)
from services.points.scopes import Admin
from services.points.uow import PointsUnitOfWork
from shared.errors import Forbidden
from shared.http.security import ensure_merchant

router = APIRouter(prefix="/v1/admin", tags=["admin"])

PAGE_MAX = 500


@router.post(
    "/adjustments",
    response_model=AdjustmentResult,
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, 409, 422, 503),
)
async def create_adjustment(
    request: Request, body: AdjustmentIn, principal: Admin
) -> AdjustmentResult:
    """Add (available at once) or take points; once per `adjustment_id`.

    Taking more than the customer holds leaves a visible debt (a negative balance). The
    same request again returns the same adjustment; the same id with anything else is 409.
    A merchant-bound key adjusts for its own merchant only, and only adds points.
    """
    merchant_id = body.merchant_id
    if principal.merchant_id is not None:
        ensure_merchant(principal, merchant_id or principal.merchant_id)
        merchant_id = principal.merchant_id
        if body.points < 0:
            raise Forbidden(
                "points: taking points from the coalition account needs a key not bound "
                "to a merchant",
                code="merchant_bound_key",
                field="points",
            )
    topic = request.app.state.settings.points_topic
    async with PointsUnitOfWork.for_request(request) as uow:
        actor = await actor_of(uow, principal.key_id)
        adjustment = Adjustment(body.adjustment_id, body.points, body.reason, actor, merchant_id)
        balance = await adjust_points(uow, body.customer_id, adjustment, points_topic=topic)
        (kept,) = await adjustments_page(uow, None, 1, adjustment_id=body.adjustment_id)
    return AdjustmentResult(**adjustment_out(kept).model_dump(), balance=summary(balance))


@router.get("/adjustments", response_model=AdjustmentPage, responses=problems(401, 403, 422, 503))
async def list_adjustments(
    request: Request,
    principal: Admin,
    customer_id: OptionalCustomerQuery = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AdjustmentPage:
    """Adjustments newest first, with who made them, when and why."""
    before = decode_cursor(cursor, "before", int) if cursor is not None else None
    async with PointsUnitOfWork.for_request(request) as uow:
        found = await adjustments_page(
            uow, customer_id, limit + 1, before, merchant_id=principal.merchant_id
        )
    page = found[:limit]
    return AdjustmentPage(
        adjustments=[adjustment_out(a) for a in page],
        next_cursor=encode_cursor({"before": page[-1].sequence}) if len(found) > limit else None,
    )
