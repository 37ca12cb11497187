"""HTTP route of the invariant check of the alerts database (programme admins only)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.alerts.integrity.schemas import InvariantReport, InvariantViolationOut
from services.alerts.invariants import (
    check_invariants_page,
    decode_invariants_cursor,
    encode_invariants_cursor,
)
from services.alerts.scopes import Admin, problems
from services.alerts.uow import AlertsUnitOfWork

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/invariants", response_model=InvariantReport, responses=problems())
async def check_invariants(
    request: Request,
    _: Admin,
    limit: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=400)] = None,
) -> InvariantReport:
    """Check every customer (or `limit` customers per page: follow `next_cursor`).

    At most one open alert per customer and kind; every open alert's customer is known;
    counts and spend never negative; a next lapse check for every customer who has bought
    and has no open lapsed alert. Each check is one set-based query over the page's range.
    """
    after = decode_invariants_cursor(cursor) if cursor is not None else None
    async with AlertsUnitOfWork.of_request(request) as uow:
        page = await check_invariants_page(uow.conn, after, limit)
    violations = [InvariantViolationOut(**asdict(v)) for v in page.violations]
    return InvariantReport(
        checked_customers=page.checked_customers,
        sound=not violations,
        breaking_customers=sorted({v.customer_id for v in violations}),
        violations=violations,
        next_cursor=encode_invariants_cursor(page.next_after) if page.next_after else None,
    )
