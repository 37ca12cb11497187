"""Admin routes (scope `admin`): rule versions, adjustments, liability, parked returns and
the invariant check. Who did what is the caller's API key (its name and id, read from the
key itself, never from the body), kept with the change.

A key bound to a merchant is an admin of that merchant only: it adjusts for its merchant
(adds points; taking points from the coalition account needs an unbound key), and sees
only its merchant's adjustments, liability and parked returns. Programme-wide routes
(rules, the invariant check over every customer) need an unbound key.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.api_admin_models import (
    AdjustmentIn,
    AdjustmentPage,
    AdjustmentResult,
    InvariantReport,
    LiabilityOut,
    MerchantLiabilityOut,
    ParkedReturnPage,
    adjustment_out,
    parked_return_out,
    violation_out,
)
from services.points.api_models import summary
from services.points.api_rules import (
    RuleEditOut,
    RuleVersionIn,
    RuleVersionOut,
    to_body,
    to_rules,
)
from services.points.api_support import (
    OptionalCustomerQuery,
    clock_of,
    decode_cursor,
    encode_cursor,
    problems,
    rule_cache,
    transaction,
)
from services.points.commands import Adjustment
from services.points.queries import (
    adjustments,
    customers_page,
    ledger_out_of_step,
    liability_by_merchant,
    parked_returns,
    total_debt,
    violations_of,
)
from services.points.rule_versions import (
    RuleEdit,
    StoredVersion,
    add_version,
    edit_version,
    get_version,
    list_edits,
)
from services.points.rule_versions import list_versions as stored_versions
from services.points.service import adjust_points
from shared.auth import ApiPrincipal, Scope
from shared.db import api_keys
from shared.errors import Forbidden
from shared.http.security import ensure_merchant, require, require_programme_admin

router = APIRouter(prefix="/v1/admin", tags=["admin"])

Admin = Annotated[ApiPrincipal, Depends(require(Scope.ADMIN))]


# What a programme admin sees and changes spans every partner.
programme_admin = require_programme_admin(
    "this route spans every merchant of the programme; a key bound to merchant "
    "{merchant} may not use it"
)
ProgrammeAdmin = Annotated[ApiPrincipal, Depends(programme_admin)]
ACTOR_MAX = 200  # what the ledger and `points.adjusted` keep


async def actor_of(conn: AsyncConnection, principal: ApiPrincipal) -> str:
    """Who acts: the calling key's name and id, from the key's own row."""
    name = await conn.scalar(
        sa.select(api_keys.c.name).where(api_keys.c.key_id == principal.key_id)
    )
    suffix = f" ({principal.key_id})"
    return f"{(name or 'unnamed key')[: ACTOR_MAX - len(suffix)]}{suffix}"


VersionId = Annotated[int, Path(ge=1, le=2**62)]
CustomerFilter = OptionalCustomerQuery
Cursor = Annotated[str | None, Query(max_length=200)]
PAGE_MAX = 500
CHECK_PAGE_DEFAULT, CHECK_PAGE_MAX = 500, 5_000


def _version_out(stored: StoredVersion) -> RuleVersionOut:
    body = to_body(stored.rules).model_dump()
    return RuleVersionOut(
        **body,
        id=stored.id,
        created_by=stored.created_by,
        recorded_at=stored.recorded_at,
        updated_by=stored.updated_by,
        updated_at=stored.updated_at,
    )


def _edit_out(edit: RuleEdit) -> RuleEditOut:
    body = to_body(edit.replaced).model_dump()
    return RuleEditOut(**body, edited_by=edit.edited_by, edited_at=edit.edited_at)


@router.get("/rules", response_model=list[RuleVersionOut], responses=problems(401, 403, 503))
async def list_rules(request: Request, principal: ProgrammeAdmin) -> list[RuleVersionOut]:
    """Every rule version, oldest first; the latest started one is in force."""
    async with transaction(request) as conn:
        return [_version_out(v) for v in await stored_versions(conn)]


@router.post(
    "/rules",
    response_model=RuleVersionOut,
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, 409, 422, 503),
)
async def create_rules(
    request: Request, body: RuleVersionIn, principal: ProgrammeAdmin
) -> RuleVersionOut:
    """Add a rule version starting in the future (`effective_from`)."""
    rules = to_rules(body)
    async with transaction(request) as conn:
        stored = await add_version(conn, rules, principal.key_id, clock_of(request)())
    rule_cache(request).invalidate()
    return _version_out(stored)


@router.get(
    "/rules/{rule_id}", response_model=RuleVersionOut, responses=problems(401, 403, 404, 422, 503)
)
async def read_rules(
    request: Request, rule_id: VersionId, principal: ProgrammeAdmin
) -> RuleVersionOut:
    async with transaction(request) as conn:
        return _version_out(await get_version(conn, rule_id))


@router.put(
    "/rules/{rule_id}",
    response_model=RuleVersionOut,
    responses=problems(401, 403, 404, 409, 422, 503),
)
async def update_rules(
    request: Request, rule_id: VersionId, body: RuleVersionIn, principal: ProgrammeAdmin
) -> RuleVersionOut:
    """Replace a version that has not started yet; one in force is 409 (add a new one).

    The replaced content is kept, with the caller's key and the time (see `/edits`).
    """
    rules = to_rules(body)
    async with transaction(request) as conn:
        stored = await edit_version(conn, rule_id, rules, clock_of(request)(), principal.key_id)
    rule_cache(request).invalidate()
    return _version_out(stored)


@router.get(
    "/rules/{rule_id}/edits",
    response_model=list[RuleEditOut],
    responses=problems(401, 403, 404, 422, 503),
)
async def list_rule_edits(
    request: Request, rule_id: VersionId, principal: ProgrammeAdmin
) -> list[RuleEditOut]:
    """What each edit of a version replaced, who edited it and when; oldest first."""
    async with transaction(request) as conn:
        return [_edit_out(edit) for edit in await list_edits(conn, rule_id)]


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
    async with transaction(request) as conn:
        adjustment = Adjustment(
            body.adjustment_id,
            body.points,
            body.reason,
            await actor_of(conn, principal),
            merchant_id,
        )
        balance = await adjust_points(
            conn,
            body.customer_id,
            adjustment,
            clock_of(request)(),
            points_topic=request.app.state.settings.points_topic,
        )
        (kept,) = await adjustments(conn, None, 1, adjustment_id=body.adjustment_id)
    return AdjustmentResult(**adjustment_out(kept).model_dump(), balance=summary(balance))


@router.get("/adjustments", response_model=AdjustmentPage, responses=problems(401, 403, 422, 503))
async def list_adjustments(
    request: Request,
    principal: Admin,
    customer_id: CustomerFilter = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    cursor: Cursor = None,
) -> AdjustmentPage:
    """Adjustments newest first, with who made them, when and why."""
    before = decode_cursor(cursor, "before", int) if cursor is not None else None
    async with transaction(request) as conn:
        found = await adjustments(
            conn, customer_id, limit + 1, before, merchant_id=principal.merchant_id
        )
    page = found[:limit]
    return AdjustmentPage(
        adjustments=[adjustment_out(a) for a in page],
        next_cursor=encode_cursor({"before": page[-1].sequence}) if len(found) > limit else None,
    )


@router.get("/liability", response_model=LiabilityOut, responses=problems(401, 403, 503))
async def get_liability(request: Request, principal: Admin) -> LiabilityOut:
    """Available and pending points outstanding per merchant, as of now.

    A merchant-bound key sees its own merchant only, and no programme-wide debt.
    """
    now = clock_of(request)()
    async with transaction(request) as conn:
        rows = await liability_by_merchant(conn, now, principal.merchant_id)
        debt = await total_debt(conn) if principal.merchant_id is None else None
    return LiabilityOut(
        as_of=now,
        merchants=[
            MerchantLiabilityOut(
                merchant_id=r.merchant_id, available=r.available, pending=r.pending
            )
            for r in rows
        ],
        total_available=sum(r.available for r in rows),
        total_pending=sum(r.pending for r in rows),
        total_debt=debt,
    )


@router.get(
    "/parked-returns", response_model=ParkedReturnPage, responses=problems(401, 403, 422, 503)
)
async def list_parked_returns(
    request: Request,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    cursor: Cursor = None,
) -> ParkedReturnPage:
    """Returns waiting for their order (parked) or refused when it came (rejected)."""
    after = decode_cursor(cursor, "after", str) if cursor is not None else None
    async with transaction(request) as conn:
        found = await parked_returns(conn, limit + 1, after, principal.merchant_id)
    page = found[:limit]
    return ParkedReturnPage(
        returns=[parked_return_out(r) for r in page],
        next_cursor=encode_cursor({"after": page[-1].return_id}) if len(found) > limit else None,
    )


@router.get("/invariants", response_model=InvariantReport, responses=problems(401, 403, 422, 503))
async def check_invariants(
    request: Request,
    principal: ProgrammeAdmin,
    limit: Annotated[int, Query(ge=1, le=CHECK_PAGE_MAX)] = CHECK_PAGE_DEFAULT,
    cursor: Cursor = None,
) -> InvariantReport:
    """Check the books of `limit` customers in full, page by page (follow `next_cursor`).

    Per customer: ledger sum = lots minus debt, no lot overdrawn, no redemption left the
    running balance negative, each redemption drew exactly its points from lots available
    at that moment. The first page also scans every customer's stored balance against the
    sum of their ledger entries.
    """
    after = decode_cursor(cursor, "after", str) if cursor is not None else None
    async with transaction(request) as conn:
        customers = await customers_page(conn, limit + 1, after)
        checked = customers[:limit]
        violations = await violations_of(conn, checked)
        out_of_step = await ledger_out_of_step(conn) if after is None else None
    breaking = sorted({v.customer_id for v in violations} | set(out_of_step or ()))
    more = len(customers) > limit
    return InvariantReport(
        checked_customers=len(checked),
        sound=not breaking,
        breaking_customers=breaking,
        violations=[violation_out(v) for v in violations],
        ledger_out_of_step=out_of_step,
        next_cursor=encode_cursor({"after": checked[-1]}) if more else None,
    )
