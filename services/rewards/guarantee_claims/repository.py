"""Guarantee claims as stored, and the reports a claim left waiting for its order."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import guarantee_claims, held_reports
from shared.db import api_keys


class GuaranteeClaimRepository:
    """Guarantee claims (and the API keys' names that decide them)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, row: dict[str, Any]) -> None:
        await self.conn.execute(sa.insert(guarantee_claims).values(**row))

    async def get(self, claim_id: uuid.UUID, *, lock: bool = False) -> Any:
        """The claim row, or None."""
        query = sa.select(guarantee_claims).where(guarantee_claims.c.claim_id == claim_id)
        return (await self.conn.execute(query.with_for_update() if lock else query)).first()

    async def update(self, claim_id: uuid.UUID, **values: Any) -> None:
        await self.conn.execute(
            sa.update(guarantee_claims)
            .where(guarantee_claims.c.claim_id == claim_id)
            .values(**values)
        )

    async def decide_waiting_on(
        self, compensation_id: uuid.UUID, status: str, now: datetime, explanation: str
    ) -> None:
        """Settle the claims still `in_review` on a compensation a person just decided."""
        await self.conn.execute(
            sa.update(guarantee_claims)
            .where(
                guarantee_claims.c.compensation_id == compensation_id,
                guarantee_claims.c.status == "in_review",
            )
            .values(status=status, decided_at=now, explanation=explanation)
        )

    async def drop_held_report(self, claim_id: uuid.UUID) -> None:
        await self.conn.execute(sa.delete(held_reports).where(held_reports.c.claim_id == claim_id))

    async def customer_page(
        self,
        customer_id: str,
        merchant_id: str | None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> list[Any]:
        """A customer's claim ids, newest first, filed before `before` (filed_at, id); only
        those filed with `merchant_id` when one is given."""
        query = sa.select(guarantee_claims.c.claim_id, guarantee_claims.c.filed_at).where(
            guarantee_claims.c.customer_id == customer_id
        )
        if merchant_id is not None:
            query = query.where(guarantee_claims.c.merchant_id == merchant_id)
        if before is not None:
            key = sa.tuple_(guarantee_claims.c.filed_at, guarantee_claims.c.claim_id)
            query = query.where(key < sa.tuple_(sa.literal(before[0]), sa.literal(before[1])))
        order = (guarantee_claims.c.filed_at.desc(), guarantee_claims.c.claim_id.desc())
        return list((await self.conn.execute(query.order_by(*order).limit(limit))).all())

    async def overdue_page(
        self, deadline: datetime, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[Any]:
        """Undecided claims filed at or before `deadline`, most overdue first."""
        query = sa.select(guarantee_claims).where(
            guarantee_claims.c.status == "in_review", guarantee_claims.c.filed_at <= deadline
        )
        if after is not None:
            key = sa.tuple_(guarantee_claims.c.filed_at, guarantee_claims.c.claim_id)
            query = query.where(key > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
        order = (guarantee_claims.c.filed_at, guarantee_claims.c.claim_id)
        return list((await self.conn.execute(query.order_by(*order).limit(limit))).all())

    async def due_for_escalation(self, filed_by: datetime, limit: int) -> list[Any]:
        """Undecided claims filed by `filed_by` and not escalated yet (SKIP LOCKED)."""
        query = (
            sa.select(guarantee_claims)
            .where(
                guarantee_claims.c.status == "in_review",
                guarantee_claims.c.escalated_at.is_(None),
                guarantee_claims.c.filed_at <= filed_by,
            )
            .order_by(guarantee_claims.c.filed_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.conn.execute(query)).all())

    async def key_name(self, key_id: str) -> str | None:
        """The name of an API key (None when it has none)."""
        name = await self.conn.scalar(sa.select(api_keys.c.name).where(api_keys.c.key_id == key_id))
        return None if name is None else str(name)
