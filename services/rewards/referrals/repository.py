"""Referral codes, recorded referrals and the one referral-programme row, as stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import customers, orders, referral_programme, referrals

_REFERRALS_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended('rewards:referrals', 0))")
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


class ReferralRepository:
    """Referral codes (on `customers`), referrals and the programme."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def claim_code(self, customer_id: str, fresh: str) -> str:
        """The customer's code: theirs if they have one, else `fresh` (a savepoint: a code
        another customer holds raises IntegrityError and rolls back only this attempt)."""
        async with self.conn.begin_nested():
            statement = pg.insert(customers).values(customer_id=customer_id, referral_code=fresh)
            return str(
                await self.conn.scalar(
                    statement.on_conflict_do_update(
                        index_elements=["customer_id"],
                        set_={"referral_code": sa.func.coalesce(customers.c.referral_code, fresh)},
                    ).returning(customers.c.referral_code)
                )
            )

    async def lock_all(self) -> None:
        """One advisory lock for every referral (two that would close a circle queue)."""
        await self.conn.execute(_REFERRALS_LOCK)

    async def owner_of(self, code: str) -> str | None:
        owner = await self.conn.scalar(
            sa.select(customers.c.customer_id).where(customers.c.referral_code == code)
        )
        return None if owner is None else str(owner)

    async def has_purchased(self, customer_id: str) -> bool:
        """True once either record knows a purchase: the order this service recorded from
        `pos.purchases`, or the points service's count."""
        ordered = await self.conn.scalar(
            sa.select(sa.literal(True)).where(orders.c.customer_id == customer_id).limit(1)
        )
        if ordered:
            return True
        row = (
            await self.conn.execute(
                sa.select(customers.c.purchase_count, customers.c.first_purchase_at).where(
                    customers.c.customer_id == customer_id
                )
            )
        ).first()
        return row is not None and (row.purchase_count > 0 or row.first_purchase_at is not None)

    async def referred_by(self, *starts: str) -> dict[str, str]:
        """The "referred by" links upward from each of `starts`."""
        links: dict[str, str] = {}
        for start in starts:
            for row in await self.conn.execute(_CHAIN, {"start": start}):
                links[row.referee_id] = row.referrer_id
        return links

    async def add(self, referee_id: str, referrer_id: str, at: datetime) -> None:
        await self.conn.execute(
            sa.insert(referrals).values(
                referee_id=referee_id, referrer_id=referrer_id, recorded_at=at
            )
        )

    async def mark_rewarded(self, referee_id: str, at: datetime) -> str | None:
        """Mark the referee's referral rewarded (once); returns the referrer, or None when
        there is no referral or it was rewarded already."""
        row = (
            await self.conn.execute(
                sa.update(referrals)
                .where(referrals.c.referee_id == referee_id, referrals.c.rewarded_at.is_(None))
                .values(rewarded_at=at)
                .returning(referrals.c.referrer_id)
            )
        ).first()
        return None if row is None else str(row.referrer_id)

    async def programme_row(self) -> Any:
        return (await self.conn.execute(sa.select(referral_programme))).first()

    async def save_programme(self, values: dict[str, Any]) -> None:
        statement = pg.insert(referral_programme).values(**values, updated_at=sa.func.now())
        columns = [*values, "updated_at"]
        await self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=["programme_id"],
                set_={k: statement.excluded[k] for k in columns if k != "programme_id"},
            )
        )
