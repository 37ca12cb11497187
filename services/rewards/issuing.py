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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import reward_definitions, vouchers
from services.rewards.domain.errors import InvalidCodeError, VoucherNotRedeemableError
from services.rewards.domain.vouchers import (
    Voucher,
    VoucherStatus,
    new_voucher_code,
    parse_voucher_code,
    redeem,
    voucher_status,
)
from services.rewards.events import rewards_event
from shared.contracts.envelope import EventEnvelope, derived_event_id
from shared.errors import Conflict, NotFound
from shared.outbox import OutboxWriter

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
    return uuid.uuid5(_VOUCHER_NAMESPACE, origin_ref)


async def reward_definitions_of(
    conn: AsyncConnection, reward_codes: set[str]
) -> dict[str, tuple[int, str | None]]:
    """Validity days and merchant binding of each known reward code, in one read."""
    if not reward_codes:
        return {}
    rows = await conn.execute(
        sa.select(
            reward_definitions.c.reward_code,
            reward_definitions.c.valid_days,
            reward_definitions.c.merchant_id,
        ).where(reward_definitions.c.reward_code.in_(sorted(reward_codes)))
    )
    return {row.reward_code: (row.valid_days, row.merchant_id) for row in rows}


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
    conn: AsyncConnection,
    requests: Sequence[VoucherRequest],
    now: datetime,
    default_days: int = 30,
) -> list[IssuedVoucher]:
    """Issue each request's voucher once, with one insert; results in request order.

    A request whose origin already has a voucher (a replay) issues nothing and has no
    event; the caller emits the events, so it decides where they go and in what order.
    """
    if not requests:
        return []
    needed = {r.reward_code for r in requests if r.valid_days is None}
    definitions = await reward_definitions_of(conn, needed)
    rows: list[dict[str, Any]] = []
    data: list[dict[str, Any]] = []
    for request in requests:
        days, merchant_id = _validity(request, definitions, default_days)
        at = request.issued_at or now
        row = {
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
        rows.append(row)
        data.append(_issued_data(row))
    statement = (
        pg.insert(vouchers)
        .on_conflict_do_nothing(index_elements=["origin_ref"])
        .returning(vouchers.c.voucher_id)
    )
    inserted = set((await conn.execute(statement, rows)).scalars())
    return [
        IssuedVoucher(
            row["voucher_id"],
            rewards_event(
                "reward.issued", row["customer_id"], row["voucher_id"], row["issued_at"], facts
            )
            if row["voucher_id"] in inserted
            else None,
        )
        for row, facts in zip(rows, data, strict=True)
    ]


def _issued_data(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "voucher_id": str(row["voucher_id"]),
        "reward_code": row["reward_code"],
        "origin": row["origin"],
        "origin_ref": row["origin_ref"],
        "merchant_id": row["merchant_id"],
        "issued_at": row["issued_at"],
        "expires_at": row["expires_at"],
    }


async def issue_voucher(
    conn: AsyncConnection,
    outbox: OutboxWriter,
    topic: str,
    request: VoucherRequest,
    now: datetime,
    default_days: int = 30,
) -> uuid.UUID:
    """Issue the voucher of `request` once, emitting `reward.issued`; returns its id."""
    (issued,) = await issue_vouchers(conn, [request], now, default_days)
    if issued.event is not None:
        outbox.emit(topic, issued.event)
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


def voucher_view(row: Any, now: datetime) -> dict[str, Any]:
    """A voucher as partner apps see it, with its status at `now`."""
    return {
        "voucher_id": str(row.voucher_id),
        "code": row.code,
        "reward_code": row.reward_code,
        "origin": row.origin,
        "merchant_id": row.merchant_id,
        "issued_at": row.issued_at,
        "expires_at": row.expires_at,
        "redeemed_at": row.redeemed_at,
        "redeemed_by": row.redeemed_by,
        "status": voucher_status(voucher_from_row(row), now).value,
    }


def _canonical(code: str) -> str:
    try:
        return parse_voucher_code(code)
    except InvalidCodeError as error:
        raise VoucherNotFound(str(error), code="voucher_code_invalid") from error


async def redeem_voucher(
    conn: AsyncConnection,
    outbox: OutboxWriter,
    topic: str,
    code: str,
    merchant_id: str,
    store_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Redeem a voucher once at `merchant_id`; refuses with the domain's reason otherwise."""
    row = (
        await conn.execute(
            sa.select(vouchers).where(vouchers.c.code == _canonical(code)).with_for_update()
        )
    ).first()
    if row is None:
        raise VoucherNotFound(f"no voucher with code {code}")
    try:
        redeem(voucher_from_row(row), merchant_id, now)
    except VoucherNotRedeemableError as error:
        raise VoucherNotRedeemable(str(error), code=f"voucher_{error.reason}") from error
    updated = (
        await conn.execute(
            sa.update(vouchers)
            .where(vouchers.c.voucher_id == row.voucher_id, vouchers.c.redeemed_at.is_(None))
            .values(redeemed_at=now, redeemed_by=merchant_id, redeemed_store=store_id)
            .returning(vouchers)
        )
    ).one()
    data = {
        "voucher_id": str(row.voucher_id),
        "reward_code": row.reward_code,
        "merchant_id": merchant_id,
        "store_id": store_id,
        "redeemed_at": now,
    }
    outbox.emit(
        topic, rewards_event("voucher.redeemed", row.customer_id, row.voucher_id, now, data)
    )
    return voucher_view(updated, now)


async def expire_due_vouchers(
    conn: AsyncConnection, outbox: OutboxWriter, topic: str, now: datetime, limit: int
) -> int:
    """Mark up to `limit` vouchers past their expiry and emit `voucher.expired` for each.

    Claims rows with SKIP LOCKED, so several instances share the work, and costs
    O(vouchers due) through the partial index on unredeemed, unexpired vouchers.
    """
    due = (
        (
            await conn.execute(
                sa.select(vouchers.c.voucher_id)
                .where(
                    vouchers.c.redeemed_at.is_(None),
                    vouchers.c.expired_at.is_(None),
                    vouchers.c.expires_at <= now,
                )
                .order_by(vouchers.c.expires_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    if not due:
        return 0
    rows = await conn.execute(
        sa.update(vouchers)
        .where(vouchers.c.voucher_id.in_(due))
        .values(expired_at=vouchers.c.expires_at)
        .returning(
            vouchers.c.voucher_id,
            vouchers.c.customer_id,
            vouchers.c.reward_code,
            vouchers.c.expires_at,
        )
    )
    for row in rows:
        data = {
            "voucher_id": str(row.voucher_id),
            "reward_code": row.reward_code,
            "expired_at": row.expires_at,
        }
        cause = derived_event_id(row.voucher_id, "expiry")
        outbox.emit(topic, rewards_event("voucher.expired", row.customer_id, cause, now, data))
    return len(due)


async def voucher_by_code(conn: AsyncConnection, code: str, now: datetime) -> dict[str, Any]:
    row = (
        await conn.execute(sa.select(vouchers).where(vouchers.c.code == _canonical(code)))
    ).first()
    if row is None:
        raise VoucherNotFound(f"no voucher with code {code}")
    return voucher_view(row, now)


def status_of(row: Any, now: datetime) -> VoucherStatus:
    return voucher_status(voucher_from_row(row), now)
