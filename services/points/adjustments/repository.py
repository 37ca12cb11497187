"""Administrators' corrections as kept in the ledger (kind `adjustment`), and the name of
the API key that made them. Repositories never commit: the unit of work does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.db import ledger
from services.points.domain.ledger import EntryKind
from shared.db import api_keys


@dataclass(frozen=True)
class AdjustmentRecord:
    """An administrator's correction as kept: who (the API key), when and why."""

    sequence: int
    adjustment_id: str
    customer_id: str
    points: int
    reason: str
    actor: str
    merchant_id: str | None
    occurred_at: datetime
    recorded_at: datetime


class AdjustmentRepository:
    """Adjustment lines of the ledger, read by id or page by page."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def request_of(self, adjustment_id: str) -> tuple[Any, ...] | None:
        """(customer, points, reason, merchant) of the adjustment already made under this id."""
        row = (
            await self.conn.execute(
                sa.select(
                    ledger.c.customer_id, ledger.c.points, ledger.c.reason, ledger.c.merchant_id
                ).where(
                    ledger.c.kind == EntryKind.ADJUSTMENT.value,
                    ledger.c.reference == adjustment_id,
                )
            )
        ).first()
        return None if row is None else tuple(row)

    async def page(
        self,
        customer_id: str | None,
        limit: int,
        before: int | None = None,
        adjustment_id: str | None = None,
        merchant_id: str | None = None,
    ) -> list[AdjustmentRecord]:
        """Adjustments, newest first (all customers, or one; all merchants, or one),
        keyset-paged by ledger id."""
        query = (
            sa.select(ledger)
            .where(ledger.c.kind == EntryKind.ADJUSTMENT.value)
            .order_by(ledger.c.id.desc())
            .limit(limit)
        )
        if customer_id is not None:
            query = query.where(ledger.c.customer_id == customer_id)
        if before is not None:
            query = query.where(ledger.c.id < before)
        if adjustment_id is not None:
            query = query.where(ledger.c.reference == adjustment_id)
        if merchant_id is not None:
            query = query.where(ledger.c.merchant_id == merchant_id)
        return [_record(row) for row in await self.conn.execute(query)]

    async def key_name(self, key_id: str) -> str | None:
        """The name of an API key (who acts is read from the key's own row)."""
        name: str | None = await self.conn.scalar(
            sa.select(api_keys.c.name).where(api_keys.c.key_id == key_id)
        )
        return name


def _record(row: Any) -> AdjustmentRecord:
    return AdjustmentRecord(
        sequence=row.id,
        adjustment_id=row.reference,
        customer_id=row.customer_id,
        points=row.points,
        reason=row.reason,
        actor=row.actor,
        merchant_id=row.merchant_id,
        occurred_at=row.occurred_at,
        recorded_at=row.recorded_at,
    )
