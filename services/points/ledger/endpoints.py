"""Partner routes of the books: balance and ledger history (scope `points:read`).

A key bound to a merchant reads the coalition balance (points are earned into one account
at every partner), but sees only its own merchant's ledger entries. Both read through the
read pool, without a transaction: at READ COMMITTED each statement sees its own snapshot.

The balance is the hottest read of the platform: besides its FastAPI route it has a lean
handler (`shared.http.lean`) the gate calls for a valid GET, past FastAPI's routing and
dependency solving; both build the body with `balance_body`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response

from services.points.domain.ledger import EntryKind
from services.points.ledger.repository import LedgerFilter
from services.points.ledger.schemas import (
    BalanceOut,
    CustomerPath,
    LedgerPage,
    Moment,
    OptionalQueryId,
    balance_json,
    decode_cursor,
    encode_cursor,
    entry_out,
    is_customer_id,
    problems,
)
from services.points.ledger.service import account_view, ledger_page
from services.points.rules.service import RuleBookCache
from services.points.scopes import POINTS_READ
from services.points.uow import ServiceUnavailable
from shared.auth import ApiPrincipal
from shared.db import ReadPool
from shared.errors import DomainError, NotFound, Unprocessable, is_transient
from shared.http.lean import lean
from shared.http.security import ensure_merchant, require

router = APIRouter(prefix="/v1", tags=["partner"])

LEDGER_PAGE_DEFAULT, LEDGER_PAGE_MAX = 50, 200
Reader = Annotated[ApiPrincipal, Depends(require(POINTS_READ))]


class CustomerNotFound(NotFound):
    code, title = "customer_not_found", "No points account for this customer"


class reading:  # lower case: used like the function it was, `async with reading(app) as conn`
    """A connection of the read pool (see `shared.db.ReadPool`); a database outage becomes
    503. A class rather than an `@asynccontextmanager` generator: the balance GET is the
    hottest path of the service, and the generator and its manager cost more per request
    than this."""

    __slots__ = ("checkout",)

    def __init__(self, app: FastAPI) -> None:
        pool: ReadPool = app.state.read_pool
        self.checkout = pool.acquire()

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            return await self.checkout.__aenter__()
        except Exception as exc:
            _raise_unavailable(exc)
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        try:
            await self.checkout.__aexit__(kind, error, _)
        except Exception as exc:
            _raise_unavailable(exc)
            raise
        if isinstance(error, Exception):
            _raise_unavailable(error)  # otherwise the error goes on as it is


def _raise_unavailable(error: Exception) -> None:
    """A transient database error becomes 503."""
    if not isinstance(error, DomainError) and is_transient(error):
        raise ServiceUnavailable("the points database did not answer; retry later") from error


async def balance_body(app: FastAPI, customer_id: str) -> bytes:
    """The balance document of `customer_id` (a valid id) as JSON; 404 when unknown."""
    state = app.state
    now = state.clock()
    cache: RuleBookCache = state.rule_cache
    async with reading(app) as conn:
        book = await cache.get(state.engine)
        view = await account_view(conn, customer_id, now, book)
    if view is None:
        raise CustomerNotFound(f"customer {customer_id} has no points account")
    # Written straight to bytes: `BalanceOut` (the route's `response_model`) documents it.
    return balance_json(view, book.in_force(now), now)


async def lean_balance(
    app: FastAPI, path: Mapping[str, str], principal: ApiPrincipal | None
) -> bytes | None:
    """`get_balance` for the gate: the gate has checked the key's scope (`points:read`) and
    its rate limit; an id `CustomerPath` would refuse is left to the route, for its 422."""
    customer_id = path["customer_id"]
    return await balance_body(app, customer_id) if is_customer_id(customer_id) else None


@router.get(
    "/customers/{customer_id}/balance",
    response_model=BalanceOut,
    responses=problems(401, 403, 404, 422, 503),
    summary="Available, pending and expiring points, tier and progress to the next tier",
)
@lean(lean_balance)
async def get_balance(request: Request, customer_id: CustomerPath, principal: Reader) -> Response:
    body = await balance_body(request.app, customer_id)
    return Response(body, media_type="application/json")


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
    async with reading(request.app) as conn:
        entries = await ledger_page(conn, customer_id, wanted, limit + 1, before)
    more = len(entries) > limit
    entries = entries[:limit]
    return LedgerPage(
        entries=[entry_out(entry) for entry in entries],
        next_cursor=encode_cursor({"before": entries[-1].sequence}) if more else None,
    )
