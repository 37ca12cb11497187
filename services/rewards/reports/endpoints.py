"""Report routes (admin): each merchant's compensation spend this month, guarantee claims
undecided after 24 hours, and the rows that break an invariant."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder

from services.rewards.domain.guarantee_claims import DECIDE_WITHIN
from services.rewards.domain.guarantee_limits import CompensationLimits, budget_month
from services.rewards.guarantee_claims.schemas import GuaranteeClaimView, OverdueClaims
from services.rewards.invariants import invariant_names, invariant_violations
from services.rewards.policies.service import DEFAULT_LIMITS_MERCHANT
from services.rewards.reports.schemas import BudgetLine, Budgets, InvariantReport, ViolationView
from services.rewards.scopes import Admin
from services.rewards.uow import RewardsUnitOfWork, request_uow
from services.rewards.vouchers.schemas import Cursor
from shared.http.pagination import aware_datetime, decode_cursor, encode_cursor, split_page, text

router = APIRouter(prefix="/v1/admin", tags=["admin"])
_OVERDUE_CURSOR: dict[str, Callable[[Any], Any]] = {
    "filed_at": aware_datetime,
    "claim_id": uuid.UUID,
}


@router.get("/reports/budgets", summary="Each merchant's compensation spend this month (paged)")
async def budgets(
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000, description="Merchants per page")] = 500,
    cursor: Cursor = None,
) -> Budgets:
    """Merchants in id order; follow `next_cursor` for more."""
    after = decode_cursor(cursor, {"after": text})["after"] if cursor is not None else None
    async with request_uow(request) as uow:
        start, end = budget_month(uow.now)
        known = set(await uow.compensations.merchants()) | set(await uow.policies.limit_merchants())
        merchants = sorted(m for m in known if m != DEFAULT_LIMITS_MERCHANT)
        later = [m for m in merchants if after is None or m > after]
        page = later[:limit]
        effective = await uow.policies.limits_of(set(page))
        report = [await _budget_line(uow, m, effective[m]) for m in page]
    more = len(later) > limit
    return Budgets(
        month_start=start,
        month_end=end,
        merchants=report,
        next_cursor=encode_cursor({"after": page[-1]}) if more else None,
    )


async def _budget_line(
    uow: RewardsUnitOfWork, merchant_id: str, limits: CompensationLimits
) -> BudgetLine:
    refunded = await uow.compensations.month_refunds(merchant_id, uow.now)
    spent = await uow.compensations.month_money(merchant_id, uow.now)
    budget = limits.merchant_monthly_budget_minor  # the default's if unset
    return BudgetLine(
        merchant_id=merchant_id,
        refunded_minor=refunded,
        spent_minor=spent,
        budget_minor=budget,
        remaining_minor=None if budget is None else budget - spent,
        held_for_review=await uow.compensations.held_count(merchant_id),
    )


@router.get("/reports/overdue-claims", summary="Guarantee claims undecided after 24 hours (paged)")
async def overdue(
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page")] = 500,
    cursor: Cursor = None,
) -> OverdueClaims:
    """Most overdue first; follow `next_cursor` for more."""
    after = None
    if cursor is not None:
        place = decode_cursor(cursor, _OVERDUE_CURSOR)
        after = (place["filed_at"], place["claim_id"])
    async with request_uow(request) as uow:
        rows = await uow.guarantee_claims.overdue_page(uow.now - DECIDE_WITHIN, limit + 1, after)
    page, next_cursor = split_page(
        rows,
        limit,
        lambda last: {"filed_at": last.filed_at.isoformat(), "claim_id": str(last.claim_id)},
    )
    return OverdueClaims(
        as_of=uow.now,
        deadline_hours=int(timedelta(hours=24).total_seconds() // 3600),
        claims=[GuaranteeClaimView.of(r) for r in page],
        next_cursor=next_cursor,
    )


@router.get(
    "/invariants",
    summary="Rows that break what must always hold (empty when the books are sound)",
)
async def invariants(
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000, description="Rows listed per invariant")] = 100,
) -> InvariantReport:
    """Each invariant lists at most `limit` breaking rows; `truncated` names those that had
    more (fix these, or ask with a larger `limit`)."""
    async with request_uow(request) as uow:
        found = await invariant_violations(uow.conn, uow.now, limit + 1)
    listed: Counter[str] = Counter()
    shown = []
    for violation in found:
        listed[violation.invariant] += 1
        if listed[violation.invariant] <= limit:
            shown.append(violation)
    return InvariantReport(
        ok=not found,
        as_of=uow.now,
        checked=invariant_names(),
        violations=[
            ViolationView(
                invariant=v.invariant, subject=v.subject, detail=jsonable_encoder(v.detail)
            )
            for v in shown
        ],
        truncated=sorted(name for name, n in listed.items() if n > limit),
    )
