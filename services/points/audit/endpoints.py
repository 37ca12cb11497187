"""Admin route of the invariant check over every customer (an unbound `admin` key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.points.audit.schemas import InvariantReport, violation_out
from services.points.audit.service import check_books
from services.points.ledger.schemas import decode_cursor, encode_cursor, problems
from services.points.scopes import ProgrammeAdmin
from services.points.uow import PointsUnitOfWork

router = APIRouter(prefix="/v1/admin", tags=["admin"])

CHECK_PAGE_DEFAULT, CHECK_PAGE_MAX = 500, 5_000


@router.get("/invariants", response_model=InvariantReport, responses=problems(401, 403, 422, 503))
async def check_invariants(
    request: Request,
    principal: ProgrammeAdmin,
    limit: Annotated[int, Query(ge=1, le=CHECK_PAGE_MAX)] = CHECK_PAGE_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> InvariantReport:
    """Check the books of `limit` customers in full, page by page (follow `next_cursor`).

    Per customer: ledger sum = lots minus debt, no lot overdrawn, no redemption left the
    running balance negative, each redemption drew exactly its points from lots available
    at that moment. The first page also scans every customer's stored balance against the
    sum of their ledger entries.
    """
    after = decode_cursor(cursor, "after", str) if cursor is not None else None
    async with PointsUnitOfWork.for_request(request) as uow:
        found = await check_books(uow, limit, after)
    breaking = found.breaking
    return InvariantReport(
        checked_customers=len(found.checked),
        sound=not breaking,
        breaking_customers=breaking,
        violations=[violation_out(v) for v in found.violations],
        ledger_out_of_step=found.ledger_out_of_step,
        next_cursor=encode_cursor({"after": found.checked[-1]}) if found.more else None,
    )
