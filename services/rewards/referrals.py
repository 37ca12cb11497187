"""Referral codes, recorded referrals and the referral programme (the stored side of
`domain.referrals`).

- A customer's code is created on first request and never changes (`customers.referral_code`
  is unique; a customer the projection has not seen yet gets a row with the defaults).
- Recording "who referred whom" takes one advisory lock for every referral: two requests
  that would close a circle (A refers B while B refers A) cannot both pass the check. The
  referee is the primary key of `referrals`, so a customer has one referrer at most.
- What each side receives is the `referral_programme` row, read once per consumer batch;
  admins change it without a deploy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import customers, orders, referral_programme, referrals
from services.rewards.domain.errors import InvalidCodeError
from services.rewards.domain.grants import Grant, PointsGrant, VoucherGrant
from services.rewards.domain.referrals import (
    ReferralProgramme,
    ReferralRefusal,
    new_referral_code,
    parse_referral_code,
    referral_refusal,
)
from shared.errors import Conflict, NotFound, Unprocessable

_REFERRALS_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended('rewards:referrals', 0))")
_CODE_ATTEMPTS = 5

# Who referred whom, upward from :start (a chain, so at most one row per step).
_CHAIN = sa.text(
    """
    WITH RECURSIVE chain(referee_id, referrer_id, depth) AS (
        SELECT referee_id, referrer_id, 1 FROM referrals WHERE referee_id = :start
        UNION ALL
        SELECT r.referee_id, r.referrer_id, c.depth + 1
        FROM referrals r JOIN chain c ON r.referee_id = c.referrer_id
        WHERE c.depth < 10000
    )
    SELECT referee_id, referrer_id FROM chain
    """
)

_EXPLANATIONS = {
    ReferralRefusal.SELF_REFERRAL: "a customer cannot refer themselves",
    ReferralRefusal.ALREADY_REFERRED: "this customer already has a referrer",
    ReferralRefusal.NOT_A_NEW_CUSTOMER: "only a customer who has not bought yet can be referred",
    ReferralRefusal.CIRCULAR_REFERRAL: (
        "the referrer was brought in, directly or through others, by this customer"
    ),
}


class ReferralCodeUnknown(NotFound):
    code, title = "referral_code_unknown", "No customer has this referral code"


class ReferralRefused(Conflict):
    code, title = "referral_refused", "The referral cannot be recorded"


async def referral_code_of(conn: AsyncConnection, customer_id: str) -> str:
    """The customer's referral code, created on the first call and the same ever after."""
    for _ in range(_CODE_ATTEMPTS):
        try:
            async with conn.begin_nested():
                return await _claim_code(conn, customer_id, new_referral_code())
        except IntegrityError:
            continue  # another customer holds this code: draw again
    raise Conflict("could not draw a free referral code; try again", code="referral_code_busy")


async def _claim_code(conn: AsyncConnection, customer_id: str, fresh: str) -> str:
    statement = pg.insert(customers).values(customer_id=customer_id, referral_code=fresh)
    return str(
        await conn.scalar(
            statement.on_conflict_do_update(
                index_elements=["customer_id"],
                set_={
                    "referral_code": sa.func.coalesce(customers.c.referral_code, fresh),
                },
            ).returning(customers.c.referral_code)
        )
    )


def _canonical(code: str) -> str:
    try:
        return parse_referral_code(code)
    except InvalidCodeError as error:
        raise Unprocessable(str(error), code="referral_code_invalid", field="code") from error


async def _has_purchased(conn: AsyncConnection, customer_id: str) -> bool:
    """True once either record knows a purchase: the order this service recorded from
    `pos.purchases`, or the points service's count. The points events can lag behind (or
    never come, for a purchase the points service dead-letters); the order record alone
    lets no customer who already bought be "referred" before the points catch up."""
    ordered = await conn.scalar(
        sa.select(sa.literal(True)).where(orders.c.customer_id == customer_id).limit(1)
    )
    if ordered:
        return True
    row = (
        await conn.execute(
            sa.select(customers.c.purchase_count, customers.c.first_purchase_at).where(
                customers.c.customer_id == customer_id
            )
        )
    ).first()
    return row is not None and (row.purchase_count > 0 or row.first_purchase_at is not None)


async def _referred_by(conn: AsyncConnection, *starts: str) -> dict[str, str]:
    """The "referred by" links upward from each of `starts` (what the refusal rules need)."""
    links: dict[str, str] = {}
    for start in starts:
        for row in await conn.execute(_CHAIN, {"start": start}):
            links[row.referee_id] = row.referrer_id
    return links


async def record_referral(
    conn: AsyncConnection, referee_id: str, code: str, now: datetime
) -> dict[str, Any]:
    """Record that the owner of `code` referred `referee_id`; refuses with the rule's reason."""
    canonical = _canonical(code)
    await conn.execute(_REFERRALS_LOCK)
    referrer_id = await conn.scalar(
        sa.select(customers.c.customer_id).where(customers.c.referral_code == canonical)
    )
    if referrer_id is None:
        raise ReferralCodeUnknown(f"no customer has the referral code {code}", field="code")
    links = await _referred_by(conn, referrer_id, referee_id)
    refusal = referral_refusal(
        referrer_id, referee_id, links, await _has_purchased(conn, referee_id)
    )
    if refusal is not None:
        raise ReferralRefused(_EXPLANATIONS[refusal], code=refusal.value, field="code")
    await conn.execute(
        sa.insert(referrals).values(referee_id=referee_id, referrer_id=referrer_id, recorded_at=now)
    )
    return {"customer_id": referee_id, "referred_by": referrer_id, "recorded_at": now}


@dataclass(frozen=True)
class StoredProgramme:
    """The programme row: what each side receives, and whether referrals pay at all."""

    programme: ReferralProgramme
    active: bool


def _grant(reward_code: str | None, points: int | None) -> Grant:
    return VoucherGrant(reward_code) if reward_code is not None else PointsGrant(int(points or 0))


def _columns(grant: Grant) -> tuple[str | None, int | None]:
    if isinstance(grant, VoucherGrant):
        return grant.reward_code, None
    return None, grant.points


async def load_programme(conn: AsyncConnection) -> StoredProgramme | None:
    """The referral programme, or None when none is configured (nothing is paid)."""
    row = (await conn.execute(sa.select(referral_programme))).first()
    if row is None:
        return None
    programme = ReferralProgramme(
        _grant(row.referrer_reward_code, row.referrer_points),
        _grant(row.referee_reward_code, row.referee_points),
    )
    return StoredProgramme(programme, row.active)


def programme_view(stored: StoredProgramme | None) -> dict[str, Any]:
    """The programme as admins read and write it."""
    if stored is None:
        return {"active": False, "referrer": None, "referee": None}

    def side(grant: Grant) -> dict[str, Any]:
        if isinstance(grant, VoucherGrant):
            return {"reward_code": grant.reward_code, "points": None}
        return {"reward_code": None, "points": grant.points}

    return {
        "active": stored.active,
        "referrer": side(stored.programme.referrer_grant),
        "referee": side(stored.programme.referee_grant),
    }


async def save_programme(conn: AsyncConnection, stored: StoredProgramme) -> None:
    """Create or replace the one programme row."""
    values: dict[str, Any] = {"programme_id": 1, "active": stored.active}
    for prefix, grant in (
        ("referrer", stored.programme.referrer_grant),
        ("referee", stored.programme.referee_grant),
    ):
        code, points = _columns(grant)
        values[f"{prefix}_reward_code"], values[f"{prefix}_points"] = code, points
    statement = pg.insert(referral_programme).values(**values, updated_at=sa.func.now())
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["programme_id"],
            set_={k: statement.excluded[k] for k in [*values, "updated_at"] if k != "programme_id"},
        )
    )
