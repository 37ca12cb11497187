"""Admin route of returns that did not apply (scope `admin`; a merchant-bound key sees its
own merchant's only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.points.ledger.schemas import decode_cursor, encode_cursor, problems
from services.points.returns.schemas import ParkedReturnPage, parked_return_out
from services.points.returns.service import unresolved_returns
from services.points.scopes import Admin
from services.points.uow import PointsUnitOfWork

router = APIRouter(prefix="/v1/admin", tags=["admin"])

PAGE_MAX = 500


@router.get(
    "/parked-returns", response_model=ParkedReturnPage, responses=problems(401, 403, 422, 503)
)
async def list_parked_returns(
    request: Request,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ParkedReturnPage:
    """Returns waiting for their order (parked) or refused when it came (rejected)."""
    after = decode_cursor(cursor, "after", str) if cursor is not None else None
    async with PointsUnitOfWork.for_request(request) as uow:
        found = await unresolved_returns(uow, limit + 1, after, principal.merchant_id)
    page = found[:limit]
    return ParkedReturnPage(
        returns=[parked_return_out(r) for r in page],
        next_cursor=encode_cursor({"after": page[-1].return_id}) if len(found) > limit else None,
    )
