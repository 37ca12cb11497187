"""Voucher routes: a customer's rewards, a voucher's status, redeeming at a point of sale,
and (admin) the reward definitions vouchers are issued from."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from services.rewards.scopes import Admin, Claim, Read
from services.rewards.uow import request_uow
from services.rewards.vouchers.schemas import (
    AdminKey,
    Cursor,
    CustomerId,
    CustomerRewards,
    PointsView,
    RedeemRequest,
    RewardDefinition,
    RewardDefinitionsPage,
    RewardDefinitionView,
    VoucherCode,
    VoucherView,
)
from services.rewards.vouchers.service import redeem_voucher, status_of, voucher_by_code
from shared.http.guessing import refuse_guessing
from shared.http.pagination import aware_datetime, decode_cursor, encode_cursor, split_page, text
from shared.http.security import ensure_merchant

router = APIRouter(prefix="/v1", tags=["rewards"])
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])
PageLimit = Annotated[int, Query(ge=1, le=1000, description="Items per list per page")]


def voucher_view(row: Any, now: Any) -> VoucherView:
    """A voucher as partner apps see it, with its status at `now`."""
    return VoucherView(
        voucher_id=str(row.voucher_id),
        code=row.code,
        reward_code=row.reward_code,
        origin=row.origin,
        merchant_id=row.merchant_id,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        redeemed_at=row.redeemed_at,
        redeemed_by=row.redeemed_by,
        status=status_of(row, now).value,
    )


def _points(row: Any) -> PointsView | None:
    if row is None:
        return None
    return PointsView(
        available=row.available,
        lifetime_points=row.lifetime_points,
        settled_points=row.settled_points,
        tier=row.tier,
        first_purchase_at=row.first_purchase_at,
        as_of=row.updated_at,
    )


def _position(value: Any) -> tuple[Any, uuid.UUID] | None:
    """A list's place in a customer-rewards cursor: its last (time, id), or None: ended."""
    if value is None:
        return None
    moment, key = value
    return aware_datetime(moment), uuid.UUID(text(key))


_REWARDS_CURSOR = {"vouchers": _position, "claims": _position}


@router.get(
    "/customers/{customer_id}/rewards",
    summary="A customer's vouchers and points view (paged)",
)
async def customer_rewards(
    request: Request,
    customer_id: CustomerId,
    principal: Read,
    limit: PageLimit = 500,
    cursor: Cursor = None,
) -> CustomerRewards:
    """A key bound to a merchant sees only the vouchers bound to that merchant and the
    guarantee claims filed with it: a voucher code is the voucher, so another merchant's
    codes are not its to read. Vouchers come newest first, claims newest first; each list
    holds at most `limit` per page."""
    bound = principal.merchant_id
    place = decode_cursor(cursor, _REWARDS_CURSOR) if cursor is not None else None
    async with request_uow(request) as uow:
        view = await uow.customers.row(customer_id)
        vouchers: list[Any] = []
        claims: list[Any] = []
        if place is None or place["vouchers"] is not None:
            before = None if place is None else place["vouchers"]
            vouchers = await uow.vouchers.customer_page(customer_id, bound, limit + 1, before)
        if place is None or place["claims"] is not None:
            before = None if place is None else place["claims"]
            claims = await uow.guarantee_claims.customer_page(customer_id, bound, limit + 1, before)
    more = {
        "vouchers": _last(vouchers[:limit], "issued_at", "voucher_id")
        if len(vouchers) > limit
        else None,
        "claims": _last(claims[:limit], "filed_at", "claim_id") if len(claims) > limit else None,
    }
    return CustomerRewards(
        customer_id=customer_id,
        points=_points(view),
        vouchers=[voucher_view(r, uow.now) for r in vouchers[:limit]],
        guarantee_claims=[str(c.claim_id) for c in claims[:limit]],
        next_cursor=encode_cursor(more) if any(more.values()) else None,
    )


def _last(rows: list[Any], moment: str, key: str) -> list[str]:
    return [getattr(rows[-1], moment).isoformat(), str(getattr(rows[-1], key))]


@router.get("/vouchers/{code}", summary="A voucher's status")
async def voucher_status(request: Request, code: VoucherCode, principal: Read) -> VoucherView:
    async with refuse_guessing(request, principal), request_uow(request) as uow:
        return voucher_view(await voucher_by_code(uow, code), uow.now)


@router.post("/vouchers/{code}/redeem", summary="Redeem a voucher at a point of sale (once)")
async def redeem(
    request: Request, code: VoucherCode, body: RedeemRequest, principal: Claim
) -> VoucherView:
    ensure_merchant(principal, body.merchant_id)
    async with refuse_guessing(request, principal), request_uow(request) as uow:
        row = await redeem_voucher(uow, code, body.merchant_id, body.store_id)
    return voucher_view(row, uow.now)


@admin_router.get("/reward-definitions", summary="Every reward definition (paged)")
async def definitions(
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    cursor: Cursor = None,
) -> RewardDefinitionsPage:
    """In reward-code order."""
    after = decode_cursor(cursor, {"after": text})["after"] if cursor is not None else None
    async with request_uow(request) as uow:
        rows = await uow.vouchers.definitions_page(limit + 1, after)
    page, next_cursor = split_page(rows, limit, lambda last: {"after": last.reward_code})
    return RewardDefinitionsPage(
        rewards=[RewardDefinitionView.of(r) for r in page], next_cursor=next_cursor
    )


@admin_router.put(
    "/reward-definitions/{reward_code}",
    summary="Create or change a reward: how long its vouchers last, where they are redeemed",
)
async def put_definition(
    request: Request, reward_code: AdminKey, body: RewardDefinition, _: Admin
) -> RewardDefinitionView:
    values = {"reward_code": reward_code, **body.stored()}
    async with request_uow(request) as uow:
        await uow.vouchers.save_definition(values)
    return RewardDefinitionView.of(values)
