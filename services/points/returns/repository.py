"""Returns as recorded: parked until their order is known, then applied or rejected.
Repositories never commit: the unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.accounts.repository import among
from services.points.db import items_from_json, order_returns
from services.points.domain.book import Changes, ReturnRecord


class ReturnRepository:
    """`order_returns`: loaded by id or by the orders they wait for, and saved per run."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def load(
        self, return_ids: Sequence[str] = (), parked_for: Sequence[str] = ()
    ) -> dict[str, ReturnRecord]:
        """Returns named by id, and the parked returns waiting for the given orders."""
        condition = sa.or_(
            among(order_returns.c.return_id, return_ids),
            sa.and_(
                among(order_returns.c.order_id, parked_for), order_returns.c.status == "parked"
            ),
        )
        rows = await self.conn.execute(sa.select(order_returns).where(condition))
        return {row.return_id: return_from_row(row) for row in rows}

    async def save(self, changes: Changes) -> None:
        """Insert the run's new returns and store what happened to the parked ones."""
        new = list(changes.new_returns.values())
        if new:
            await self.conn.execute(sa.insert(order_returns), [_return_row(r) for r in new])
        for key, record in changes.touched_returns.items():
            if key in changes.new_returns:
                continue
            # rare: a parked return meeting its order
            await self.conn.execute(
                sa.update(order_returns)
                .where(order_returns.c.return_id == record.return_id)
                .values(
                    status=record.status,
                    points_reversed=record.points_reversed,
                    rejection=record.rejection,
                    applied_at=record.applied_at,
                )
            )

    async def unresolved(
        self, limit: int, after: str | None = None, merchant_id: str | None = None
    ) -> list[ReturnRecord]:
        """Returns still waiting for their order, or rejected when it came (cursor: return id)."""
        query = (
            sa.select(order_returns)
            .where(order_returns.c.status.in_(("parked", "rejected")))
            .order_by(order_returns.c.return_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(order_returns.c.return_id > after)
        if merchant_id is not None:
            query = query.where(order_returns.c.merchant_id == merchant_id)
        return [return_from_row(row) for row in await self.conn.execute(query)]


def return_from_row(row: Any) -> ReturnRecord:
    return ReturnRecord(
        return_id=row.return_id,
        order_id=row.order_id,
        customer_id=row.customer_id,
        merchant_id=row.merchant_id,
        event_id=row.event_id,
        occurred_at=row.occurred_at,
        currency=row.currency,
        refunded_minor=row.refunded_minor,
        items=items_from_json(row.items),
        status=row.status,
        points_reversed=row.points_reversed,
        rejection=row.rejection,
        applied_at=row.applied_at,
    )


def _return_row(record: ReturnRecord) -> dict[str, Any]:
    return {
        "return_id": record.return_id,
        "order_id": record.order_id,
        "customer_id": record.customer_id,
        "merchant_id": record.merchant_id,
        "event_id": record.event_id,
        "occurred_at": record.occurred_at,
        "currency": record.currency,
        "refunded_minor": record.refunded_minor,
        "items": [{"sku": i.sku, "quantity": i.quantity} for i in record.items] or None,
        "status": record.status,
        "points_reversed": record.points_reversed,
        "rejection": record.rejection,
        "applied_at": record.applied_at,
    }
