"""The customer projection as stored: `customers` (one row per customer) and the orders
the points events report (`customer_orders`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.customers.service import CustomerView
from services.rewards.db import customer_orders, customers
from shared.contracts.points import PointsAccrued


class CustomerRepository:
    """Customers as this service sees them."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def row(self, customer_id: str) -> Any:
        """The customer's stored row, or None when the projection has not seen them."""
        query = sa.select(customers).where(customers.c.customer_id == customer_id)
        return (await self.conn.execute(query)).first()

    async def load_views(
        self, customer_ids: Sequence[str], *, lock: bool = False
    ) -> dict[str, CustomerView]:
        query = sa.select(
            customers.c.customer_id,
            customers.c.available,
            customers.c.pending,
            customers.c.lifetime_points,
            customers.c.tier,
            customers.c.purchase_count,
            customers.c.first_purchase_at,
            customers.c.settled_points,
        ).where(customers.c.customer_id.in_(sorted(set(customer_ids))))
        if lock:
            query = query.order_by(customers.c.customer_id).with_for_update()
        return {row.customer_id: CustomerView(*row) for row in await self.conn.execute(query)}

    async def save_views(self, views: list[CustomerView]) -> None:
        if not views:
            return
        rows = [
            {
                "customer_id": v.customer_id,
                "available": v.available,
                "pending": v.pending,
                "lifetime_points": v.lifetime_points,
                "tier": v.tier,
                "purchase_count": v.purchase_count,
                "first_purchase_at": v.first_purchase_at,
                "settled_points": v.settled_points,
            }
            for v in views
        ]
        statement = pg.insert(customers).values(rows)
        columns = [k for k in rows[0] if k != "customer_id"]
        await self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=["customer_id"],
                set_={**{k: statement.excluded[k] for k in columns}, "updated_at": sa.func.now()},
            )
        )

    async def record_orders(self, accruals: list[PointsAccrued]) -> None:
        if not accruals:
            return
        rows = [
            {
                "order_id": e.data.order_id,
                "customer_id": e.customer_id,
                "merchant_id": e.data.merchant_id,
                "ordered_at": e.occurred_at,
            }
            for e in accruals
        ]
        await self.conn.execute(pg.insert(customer_orders).values(rows).on_conflict_do_nothing())
