"""Redemptions as stored: the request's idempotency key and fingerprint, the lots drawn on
(so a cancellation gives back the very same lots) and, for a catalogue claim's debit, the
claim. Repositories never commit: the unit of work does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.db import redemptions
from services.points.domain.lots import LotDraw


@dataclass(frozen=True)
class StoredRedemption:
    """One redemption row."""

    redemption_id: uuid.UUID
    customer_id: str
    idempotency_key: str
    request_fingerprint: bytes
    points: int
    merchant_id: str
    reference: str
    draws: tuple[LotDraw, ...]
    claim_id: str | None
    occurred_at: datetime
    cancelled_at: datetime | None


class RedemptionRepository:
    """`redemptions`: by id or by (customer, idempotency key); added and cancelled."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, redemption_id: uuid.UUID, lock: bool = False) -> StoredRedemption | None:
        return await self._one(redemptions.c.redemption_id == redemption_id, lock)

    async def by_key(self, customer_id: str, idempotency_key: str) -> StoredRedemption | None:
        return await self._one(
            (redemptions.c.customer_id == customer_id)
            & (redemptions.c.idempotency_key == idempotency_key)
        )

    async def merchant_of(self, redemption_id: uuid.UUID) -> str | None:
        """The merchant a redemption was made at (None when there is no such redemption)."""
        merchant: str | None = await self.conn.scalar(
            sa.select(redemptions.c.merchant_id).where(redemptions.c.redemption_id == redemption_id)
        )
        return merchant

    async def add(self, redemption: StoredRedemption) -> None:
        await self.conn.execute(
            sa.insert(redemptions).values(
                redemption_id=redemption.redemption_id,
                customer_id=redemption.customer_id,
                idempotency_key=redemption.idempotency_key,
                request_fingerprint=redemption.request_fingerprint,
                points=redemption.points,
                merchant_id=redemption.merchant_id,
                reference=redemption.reference,
                draws=_draws_json(redemption.draws),
                claim_id=redemption.claim_id,
                occurred_at=redemption.occurred_at,
                cancelled_at=redemption.cancelled_at,
            )
        )

    async def mark_cancelled(self, redemption_id: uuid.UUID, at: datetime) -> None:
        await self.conn.execute(
            sa.update(redemptions)
            .where(redemptions.c.redemption_id == redemption_id)
            .values(cancelled_at=at)
        )

    async def _one(
        self, condition: sa.ColumnElement[bool], lock: bool = False
    ) -> StoredRedemption | None:
        query = sa.select(redemptions).where(condition)
        if lock:
            query = query.with_for_update()
        row = (await self.conn.execute(query)).first()
        return None if row is None else _stored(row)


def _draws_json(draws: Sequence[LotDraw]) -> list[dict[str, Any]]:
    return [{"lot_id": d.lot_id, "points": d.points} for d in draws]


def _stored(row: Any) -> StoredRedemption:
    return StoredRedemption(
        redemption_id=row.redemption_id,
        customer_id=row.customer_id,
        idempotency_key=row.idempotency_key,
        request_fingerprint=bytes(row.request_fingerprint),
        points=row.points,
        merchant_id=row.merchant_id,
        reference=row.reference,
        draws=tuple(LotDraw(d["lot_id"], d["points"]) for d in row.draws),
        claim_id=row.claim_id,
        occurred_at=row.occurred_at,
        cancelled_at=row.cancelled_at,
    )
