"""Issuing, redeeming and expiring vouchers (the stored side of `domain.vouchers`).

A voucher is issued once per origin reference (`origin_ref` is unique): a replayed
compensation, claim or milestone finds its voucher already there and issues nothing.
Redemption is a conditional update on an unredeemed, unexpired row, so two points of
sale racing for one code cannot both succeed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.rewards.domain.errors import InvalidCodeError, VoucherNotRedeemableError
from services.rewards.domain.keys import derived_uuid
from services.rewards.domain.vouchers import (
    Voucher,
    VoucherStatus,
    new_voucher_code,
    parse_voucher_code,
    redeem,
    voucher_status,
)
from services.rewards.vouchers.events import reward_issued, voucher_expired, voucher_redeemed
from shared.contracts.envelope import EventEnvelope
from shared.errors import Conflict, NotFound

if TYPE_CHECKING:
    from services.rewards.uow import RewardsUnitOfWork

_VOUCHER_NAMESPACE = uuid.UUID("3d0b8a52-7c1e-4f7a-9a64-2b9d0e6f5c21")


class VoucherNotRedeemable(Conflict):
    code, title = "voucher_not_redeemable", "The voucher cannot be redeemed"


class VoucherNotFound(NotFound):
    code, title = "voucher_not_found", "No such voucher"


@dataclass(frozen=True)
class VoucherRequest:
    """A voucher to issue, and what caused it (at most one voucher per `origin_ref`)."""

    customer_id: str
    reward_code: str
    origin: str
    origin_ref: str
    merchant_id: str | None = None
    valid_days: int | None = None  # None: the reward definition's, else the default
    issued_at: datetime | None = None  # None: the caller's `now`


def voucher_id_for(origin_ref: str) -> uuid.UUID:
    """The voucher id of an origin reference: the same cause always names the same voucher."""
    return derived_uuid(_VOUCHER_NAMESPACE, origin_ref)


def _validity(
    request: VoucherRequest, definitions: dict[str, tuple[int, str | None]], default_days: int
) -> tuple[int, str | None]:
    if request.valid_days is not None:
        return request.valid_days, request.merchant_id
    known = definitions.get(request.reward_code)
    if known is None:
        return default_days, request.merchant_id
    return known[0], request.merchant_id or known[1]


@dataclass(frozen=True)
class IssuedVoucher:
    """The voucher of a request, and its `reward.issued` event when this call issued it."""

    voucher_id: uuid.UUID
    event: EventEnvelope | None


async def issue_vouchers(
    uow: RewardsUnitOfWork,
    requests: Sequence[VoucherRequest],
    now: datetime,
    *,
    fresh: bool = False,
) -> list[IssuedVoucher]:
    """Issue each request's voucher once, with one insert; results in request order.

    A request whose origin already has a voucher (a replay) issues nothing and has no
    event; the caller emits the events, so it decides where they go and in what order.
    `fresh`: the caller knows no origin can have a voucher yet (`insert_fresh`).
    """
    if not requests:
        return []
    needed = {r.reward_code for r in requests if r.valid_days is None}
    definitions = await uow.config.definitions(uow, needed)
    rows: list[dict[str, Any]] = []
    for request in requests:
        days, merchant_id = _validity(request, definitions, uow.default_voucher_days)
        at = request.issued_at or now
        rows.append(
            {
                "voucher_id": voucher_id_for(request.origin_ref),
                "code": new_voucher_code(),
                "customer_id": request.customer_id,
                "reward_code": request.reward_code,
                "origin": request.origin,
                "origin_ref": request.origin_ref,
                "merchant_id": merchant_id,
                "issued_at": at,
                "expires_at": at + timedelta(days=days),
            }
        )
    insert = uow.vouchers.insert_fresh if fresh else uow.vouchers.insert_new
    inserted = await insert(rows)
    return [
        IssuedVoucher(
            row["voucher_id"], reward_issued(row) if row["voucher_id"] in inserted else None
        )
        for row in rows
    ]


async def issue_voucher(
    uow: RewardsUnitOfWork, request: VoucherRequest, now: datetime
) -> uuid.UUID:
    """Issue the voucher of `request` once, emitting `reward.issued`; returns its id."""
    (issued,) = await issue_vouchers(uow, [request], now)
    if issued.event is not None:
        uow.emit_rewards(issued.event)
    return issued.voucher_id


def voucher_from_row(row: Any) -> Voucher:
    return Voucher(
        code=row.code,
        reward_code=row.reward_code,
        customer_id=row.customer_id,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        merchant_id=row.merchant_id,
        redeemed_at=row.redeemed_at,
        redeemed_by=row.redeemed_by,
    )


def status_of(row: Any, now: datetime) -> VoucherStatus:
    return voucher_status(voucher_from_row(row), now)


def _canonical(code: str) -> str:
    try:
        return parse_voucher_code(code)
    except InvalidCodeError as error:
        raise VoucherNotFound(str(error), code="voucher_code_invalid") from error


async def redeem_voucher(
    uow: RewardsUnitOfWork, code: str, merchant_id: str, store_id: str | None
) -> Any:
    """Redeem a voucher once at `merchant_id`; refuses with the domain's reason otherwise.
    Returns the redeemed row."""
    row = await uow.vouchers.by_code(_canonical(code), lock=True)
    if row is None:
        raise VoucherNotFound(f"no voucher with code {code}")
    try:
        redeem(voucher_from_row(row), merchant_id, uow.now)
    except VoucherNotRedeemableError as error:
        raise VoucherNotRedeemable(str(error), code=f"voucher_{error.reason}") from error
    updated = await uow.vouchers.mark_redeemed(row.voucher_id, merchant_id, store_id, uow.now)
    uow.emit_rewards(voucher_redeemed(row, merchant_id, store_id, uow.now))
    return updated


async def expire_due_vouchers(uow: RewardsUnitOfWork, limit: int) -> int:
    """Mark up to `limit` vouchers past their expiry and emit `voucher.expired` for each.

    Claims rows with SKIP LOCKED, so several instances share the work, and costs
    O(vouchers due) through the partial index on unredeemed, unexpired vouchers.
    """
    expired = await uow.vouchers.expire_due(uow.now, limit)
    for row in expired:
        uow.emit_rewards(voucher_expired(row, uow.now))
    return len(expired)


async def voucher_by_code(uow: RewardsUnitOfWork, code: str) -> Any:
    """The voucher with `code` (any spelling the code parser accepts)."""
    row = await uow.vouchers.by_code(_canonical(code))
    if row is None:
        raise VoucherNotFound(f"no voucher with code {code}")
    return row
