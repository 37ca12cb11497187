"""Partner routes: balance, ledger history, redemptions and their cancellation.

Scopes: `points:read` for reads, `points:redeem` for redemptions (`admin` implies both).
A key bound to a merchant reads the coalition balance (points are earned into one account
at every partner), but sees only its own merchant's ledger entries, and redeems or cancels
only at its own merchant.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status

from services.points.api_models import (
    BalanceOut,
    LedgerPage,
    RedemptionIn,
    RedemptionOut,
    balance_out,
    entry_out,
    redemption_out,
)
from services.points.api_support import (
    CustomerPath,
    Moment,
    OptionalQueryId,
    PathId,
    clock_of,
    decode_cursor,
    encode_cursor,
    engine_of,
    problems,
    reading,
    rule_cache,
    transaction,
)
from services.points.domain.ledger import EntryKind
from services.points.queries import LedgerFilter, account_view, ledger_page, redemption_merchant
from services.points.scopes import POINTS_READ, POINTS_REDEEM
from services.points.service import RedemptionNotFound, RedemptionRequest, cancel_redemption, redeem
from shared.auth import ApiPrincipal
from shared.errors import NotFound, Unprocessable
from shared.http.security import ensure_merchant, require

router = APIRouter(prefix="/v1", tags=["partner"])

LEDGER_PAGE_DEFAULT, LEDGER_PAGE_MAX = 50, 200
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Chosen by the caller; a retry with the same key returns the same redemption",
    ),
]
Reader = Annotated[ApiPrincipal, Depends(require(POINTS_READ))]
Redeemer = Annotated[ApiPrincipal, Depends(require(POINTS_REDEEM))]


class CustomerNotFound(NotFound):
    code, title = "customer_not_found", "No points account for this customer"


@router.get(
    "/customers/{customer_id}/balance",
    response_model=BalanceOut,
    responses=problems(401, 403, 404, 422, 503),
    summary="Available, pending and expiring points, tier and progress to the next tier",
)
async def get_balance(request: Request, customer_id: CustomerPath, principal: Reader) -> BalanceOut:
    now = clock_of(request)()
    async with reading(request) as conn:
        book = await rule_cache(request).get(engine_of(request))
        view = await account_view(conn, customer_id, now, book)
    if view is None:
        raise CustomerNotFound(f"customer {customer_id} has no points account")
    return balance_out(view, book.in_force(now), now)


@router.get(
    "/customers/{customer_id}/ledger",
    response_model=LedgerPage,
    responses=problems(401, 403, 422, 503),
    summary="Ledger entries, newest first; filter by kind, time range and merchant",
)
async def get_ledger(
    request: Request,
    customer_id: CustomerPath,
    principal: Reader,
    kind: Annotated[list[EntryKind] | None, Query(description="Any of these kinds")] = None,
    since: Annotated[Moment | None, Query(alias="from", description="Included")] = None,
    until: Annotated[Moment | None, Query(alias="to", description="Excluded")] = None,
    merchant_id: OptionalQueryId = None,
    limit: Annotated[int, Query(ge=1, le=LEDGER_PAGE_MAX)] = LEDGER_PAGE_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> LedgerPage:
    if since is not None and until is not None and until <= since:
        raise Unprocessable("`to` must be later than `from`", code="invalid_range", field="to")
    if principal.merchant_id is not None:
        ensure_merchant(principal, merchant_id or principal.merchant_id)
        merchant_id = principal.merchant_id
    before = decode_cursor(cursor, "before", int) if cursor is not None else None
    wanted = LedgerFilter(tuple(kind or ()), since, until, merchant_id)
    async with reading(request) as conn:
        entries = await ledger_page(conn, customer_id, wanted, limit + 1, before)
    more = len(entries) > limit
    entries = entries[:limit]
    return LedgerPage(
        entries=[entry_out(entry) for entry in entries],
        next_cursor=encode_cursor({"before": entries[-1].sequence}) if more else None,
    )


@router.post(
    "/customers/{customer_id}/redemptions",
    response_model=RedemptionOut,
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, 409, 422, 503),
    summary="Spend available points (idempotent by the Idempotency-Key header)",
    description=(
        "409 `insufficient_points` when the available points fall short (nothing is stored, "
        "so the key may be retried later). The same key with the same body returns the same "
        "redemption (header `Idempotent-Replayed: true`); with a different body, 422 "
        "`idempotency_key_reused`. Keys starting with `saga:` are reserved for catalogue "
        "claims (422 `idempotency_key_reserved`)."
    ),
)
async def post_redemption(
    request: Request,
    response: Response,
    customer_id: CustomerPath,
    body: RedemptionIn,
    principal: Redeemer,
    idempotency_key: IdempotencyKey,
) -> RedemptionOut:
    ensure_merchant(principal, body.merchant_id)
    asked = RedemptionRequest(
        customer_id, body.points, body.merchant_id, body.reference, idempotency_key
    )
    async with transaction(request) as conn:
        outcome = await redeem(
            conn, asked, clock_of(request)(), points_topic=request.app.state.settings.points_topic
        )
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return redemption_out(outcome)


@router.post(
    "/redemptions/{redemption_id}/cancel",
    response_model=RedemptionOut,
    responses=problems(401, 403, 404, 409, 422, 503),
    summary="Give a redemption's points back, with their original expiry (idempotent)",
    description=(
        "409 `redemption_belongs_to_claim` for the debit of a rewards catalogue claim: its "
        "voucher may be out, so only the claim's own cancellation gives those points back."
    ),
)
async def post_cancel(
    request: Request, redemption_id: PathId, principal: Redeemer
) -> RedemptionOut:
    async with transaction(request) as conn:
        merchant = await redemption_merchant(conn, redemption_id)
        if merchant is None:
            raise RedemptionNotFound(f"no redemption {redemption_id}")
        ensure_merchant(principal, merchant)
        outcome = await cancel_redemption(
            conn,
            redemption_id,
            clock_of(request)(),
            points_topic=request.app.state.settings.points_topic,
        )
    return redemption_out(outcome)
