"""Partner-app routes: catalogue, claims, rewards and vouchers, guarantee claims.

One transaction per request (`engine.begin()`); outgoing events go to the outbox in it.
Every error is a `DomainError`, rendered as problem+json by the chassis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy.ext.asyncio import AsyncEngine

from services.rewards.catalogue import (
    ClaimNotFound,
    claim_row,
    claim_view,
    may_see_claim,
    request_claim,
)
from services.rewards.claims import ClaimFiling, GuaranteeClaimNotFound, file_claim
from services.rewards.claims import claim_view as guarantee_claim_view
from services.rewards.compensation import Delivery
from services.rewards.db import catalogue_items, customers, guarantee_claims, vouchers
from services.rewards.issuing import redeem_voucher, voucher_by_code, voucher_view
from services.rewards.scopes import CLAIMS_FILE, REWARDS_CLAIM, REWARDS_READ
from services.rewards.topics import RewardsTopics
from shared.auth import ApiPrincipal
from shared.contracts.fields import Currency, Identifier, Money
from shared.errors import Conflict
from shared.http.guessing import refuse_guessing
from shared.http.security import ensure_merchant, require
from shared.outbox import OutboxWriter

CustomerId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@-]+$")]
VoucherCode = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9 -]+$")]
Read = Annotated[ApiPrincipal, Depends(require(REWARDS_READ))]
Claim = Annotated[ApiPrincipal, Depends(require(REWARDS_CLAIM))]
File = Annotated[ApiPrincipal, Depends(require(CLAIMS_FILE))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimRequest(_Body):
    item_id: Identifier
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$"
    )


class RedeemRequest(_Body):
    merchant_id: Identifier
    store_id: Identifier | None = None


class MeasuredValue(_Body):
    value: Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=12, decimal_places=3)]
    unit: str = Field(pattern="^(seconds|minutes|hours|breached)$")


class GuaranteeClaimRequest(_Body):
    merchant_id: Identifier
    order_id: Identifier
    promise_kind: Identifier
    measured: MeasuredValue
    order_amount: Money | None = Field(
        default=None, description="Optional; must equal the recorded purchase when given."
    )
    currency: Currency | None = Field(
        default=None,
        validate_default=True,
        description="Optional; must equal the recorded purchase when given.",
    )

    @field_validator("currency")
    @classmethod
    def _amount_has_currency(cls, currency: str | None, info: ValidationInfo) -> str | None:
        if currency is None and info.data.get("order_amount") is not None:
            raise ValueError("currency is required when order_amount is given")
        return currency


def engine(request: Request) -> AsyncEngine:
    return request.app.state.engine  # type: ignore[no-any-return]


def clock(request: Request) -> Callable[[], datetime]:
    return request.app.state.clock  # type: ignore[no-any-return]


def delivery(request: Request, outbox: OutboxWriter) -> Delivery:
    settings = request.app.state.settings
    topics: RewardsTopics = request.app.state.topics
    return Delivery(outbox, topics, settings.default_voucher_days)


router = APIRouter(prefix="/v1", tags=["rewards"])


@router.get("/catalogue", summary="Items a customer can claim with points")
async def catalogue(request: Request, _: Read) -> dict[str, Any]:
    now = clock(request)()
    async with engine(request).connect() as conn:
        rows = await conn.execute(
            sa.select(catalogue_items)
            .where(catalogue_items.c.claimable_from <= now, catalogue_items.c.claimable_until > now)
            .order_by(catalogue_items.c.item_id)
        )
        return {"items": [_item(r) for r in rows]}


def _item(row: Any) -> dict[str, Any]:
    item = dict(row._mapping)
    item["eligible_tiers"] = list(item["eligible_tiers"])
    stock = item["total_stock"]
    item["units_left"] = None if stock is None else max(stock - item["units_claimed"], 0)
    return item


@router.post(
    "/customers/{customer_id}/claims",
    summary="Claim a catalogue item: spends points, issues a voucher (waits up to ~2 s)",
    status_code=201,
    responses={202: {"description": "still in progress; poll the Location"}},
)
async def claim_item(
    request: Request, customer_id: CustomerId, body: ClaimRequest, principal: Claim
) -> JSONResponse:
    now = clock(request)()
    outbox = OutboxWriter()
    async with engine(request).begin() as conn:
        row = await request_claim(
            conn,
            outbox,
            request.app.state.topics,
            customer_id,
            body.item_id,
            now,
            body.idempotency_key,
            principal.merchant_id,
        )
        await outbox.flush(conn)
    _wake_relay(request)
    view = await _wait_for_outcome(request, row.claim_id)
    location = f"/v1/claims/{view['claim_id']}"
    if not view["settled"]:
        return JSONResponse(jsonable_encoder(view), status_code=202, headers={"Location": location})
    if view["state"] == "issued":
        return JSONResponse(jsonable_encoder(view), status_code=201, headers={"Location": location})
    raise Conflict(
        f"the claim was not fulfilled: {view['reason'] or view['state']}",
        code=f"claim_{view['state']}",
        claim_id=view["claim_id"],
        reason=view["reason"],
    )


def _wake_relay(request: Request) -> None:
    relay = getattr(request.app.state, "outbox_relay", None)
    if relay is not None:
        relay.wakeup.set()


async def _wait_for_outcome(request: Request, claim_id: uuid.UUID) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + request.app.state.settings.claim_wait_seconds
    while True:
        async with engine(request).connect() as conn:
            row = await claim_row(conn, claim_id)
            view = await claim_view(conn, row, clock(request)())
        if view["settled"] or loop.time() >= deadline:
            return view
        await asyncio.sleep(0.05)


@router.get("/claims/{claim_id}", summary="A catalogue claim's state and voucher")
async def get_claim(request: Request, claim_id: uuid.UUID, principal: Read) -> dict[str, Any]:
    async with engine(request).connect() as conn:
        row = await claim_row(conn, claim_id)
        if row is None or not may_see_claim(principal.merchant_id, row):
            raise ClaimNotFound(f"no claim {claim_id}")
        return await claim_view(conn, row, clock(request)())


@router.get("/customers/{customer_id}/rewards", summary="A customer's vouchers and points view")
async def customer_rewards(
    request: Request, customer_id: CustomerId, principal: Read
) -> dict[str, Any]:
    """A key bound to a merchant sees only the vouchers bound to that merchant and the
    guarantee claims filed with it: a voucher code is the voucher, so another merchant's
    codes are not its to read."""
    now = clock(request)()
    bound = principal.merchant_id
    async with engine(request).connect() as conn:
        view = (
            await conn.execute(sa.select(customers).where(customers.c.customer_id == customer_id))
        ).first()
        mine = [] if bound is None else [vouchers.c.merchant_id == bound]
        rows = await conn.execute(
            sa.select(vouchers)
            .where(vouchers.c.customer_id == customer_id, *mine)
            .order_by(vouchers.c.issued_at.desc())
            .limit(500)
        )
        filed = [] if bound is None else [guarantee_claims.c.merchant_id == bound]
        claims = await conn.execute(
            sa.select(guarantee_claims.c.claim_id)
            .where(guarantee_claims.c.customer_id == customer_id, *filed)
            .order_by(guarantee_claims.c.filed_at.desc())
            .limit(100)
        )
        return {
            "customer_id": customer_id,
            "points": _points(view),
            "vouchers": [voucher_view(r, now) for r in rows],
            "guarantee_claims": [str(c.claim_id) for c in claims],
        }


def _points(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "available": row.available,
        "lifetime_points": row.lifetime_points,
        "settled_points": row.settled_points,
        "tier": row.tier,
        "first_purchase_at": row.first_purchase_at,
        "as_of": row.updated_at,
    }


@router.get("/vouchers/{code}", summary="A voucher's status")
async def voucher_status(request: Request, code: VoucherCode, principal: Read) -> dict[str, Any]:
    async with refuse_guessing(request, principal), engine(request).connect() as conn:
        return await voucher_by_code(conn, code, clock(request)())


@router.post("/vouchers/{code}/redeem", summary="Redeem a voucher at a point of sale (once)")
async def redeem(
    request: Request, code: VoucherCode, body: RedeemRequest, principal: Claim
) -> dict[str, Any]:
    ensure_merchant(principal, body.merchant_id)
    outbox = OutboxWriter()
    async with refuse_guessing(request, principal), engine(request).begin() as conn:
        view = await redeem_voucher(
            conn,
            outbox,
            request.app.state.topics.rewards,
            code,
            body.merchant_id,
            body.store_id,
            clock(request)(),
        )
        await outbox.flush(conn)
    _wake_relay(request)
    return view


@router.post(
    "/customers/{customer_id}/guarantee-claims",
    summary="A customer's complaint that a promise was missed (same policy as incidents)",
    status_code=201,
)
async def file_guarantee_claim(
    request: Request, customer_id: CustomerId, body: GuaranteeClaimRequest, principal: File
) -> dict[str, Any]:
    ensure_merchant(principal, body.merchant_id)
    filing = ClaimFiling(
        customer_id,
        body.merchant_id,
        body.order_id,
        body.promise_kind,
        body.measured.value,
        body.measured.unit,
        body.order_amount,
        body.currency,
    )
    outbox = OutboxWriter()
    async with engine(request).begin() as conn:
        view = await file_claim(conn, delivery(request, outbox), filing, clock(request)())
        await outbox.flush(conn)
    _wake_relay(request)
    return view


@router.get("/guarantee-claims/{claim_id}", summary="A guarantee claim and its decision")
async def get_guarantee_claim(
    request: Request, claim_id: uuid.UUID, principal: Read
) -> dict[str, Any]:
    """A key bound to a merchant reads only the claims filed with it; others answer 404."""
    async with engine(request).connect() as conn:
        view = await guarantee_claim_view(conn, claim_id)
    if not principal.may_act_for(view["merchant_id"]):
        raise GuaranteeClaimNotFound(f"no guarantee claim {claim_id}")
    return view
