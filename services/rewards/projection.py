"""This service's own view of each customer, kept from the snapshots on `loyalty.points`.

Every points event carries the account right after its change (`AccountSnapshot`), and a
customer's events arrive in order (message key = customer), so the newest snapshot is
the projection: available balance, tier, lifetime points, purchases, first purchase.
`settled_points` moves only with `points.settled` (its `settled_lifetime_points`, never
down: a settled order can no longer be returned), so what milestones count is immune to
a purchase returned within its window.
Accruals also record the order (customer, merchant, time), which is how a guarantee
claim is checked against "an order the customer really made". The previous and new
views of each event are handed to `on_change` (milestones, referrals) in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import customer_orders, customers
from shared.contracts.envelope import EventEnvelope
from shared.contracts.points import AccountSnapshot, PointsAccrued, PointsSettled
from shared.kafka.handlers import BatchContext


@dataclass(frozen=True)
class CustomerView:
    customer_id: str
    available: int = 0
    pending: int = 0
    lifetime_points: int = 0
    tier: str = "member"
    purchase_count: int = 0
    first_purchase_at: datetime | None = None
    settled_points: int = 0


ViewChange = Callable[
    [BatchContext, EventEnvelope, CustomerView | None, CustomerView], Awaitable[None]
]


async def load_views(
    conn: AsyncConnection, customer_ids: Sequence[str], *, lock: bool = False
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
    return {row.customer_id: CustomerView(*row) for row in await conn.execute(query)}


def _advance(before: CustomerView | None, event: EventEnvelope) -> CustomerView:
    snap: AccountSnapshot = event.data
    view = before or CustomerView(event.customer_id)
    first_at = view.first_purchase_at
    if snap.first_purchase and first_at is None:
        first_at = event.occurred_at
    settled = view.settled_points
    if isinstance(event, PointsSettled):
        settled = max(settled, event.data.settled_lifetime_points)
    return replace(
        view,
        available=snap.available,
        pending=snap.pending,
        lifetime_points=snap.lifetime_earned,
        tier=snap.tier.value,
        purchase_count=snap.purchase_count,
        first_purchase_at=first_at,
        settled_points=settled,
    )


async def project(
    ctx: BatchContext, events: Sequence[EventEnvelope], on_change: ViewChange | None = None
) -> dict[str, CustomerView]:
    """Apply a run of points events to the projection; returns the new views."""
    views: dict[str, CustomerView] = dict(
        await load_views(ctx.conn, [e.customer_id for e in events], lock=True)
    )
    changed: dict[str, CustomerView] = {}
    for event in events:
        before = changed.get(event.customer_id) or views.get(event.customer_id)
        after = _advance(before, event)
        changed[event.customer_id] = after
        if on_change is not None:
            await on_change(ctx, event, before, after)
    await _save(ctx.conn, list(changed.values()))
    await _record_orders(ctx.conn, [e for e in events if isinstance(e, PointsAccrued)])
    return changed


async def _save(conn: AsyncConnection, views: list[CustomerView]) -> None:
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
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["customer_id"],
            set_={**{k: statement.excluded[k] for k in columns}, "updated_at": sa.func.now()},
        )
    )


async def _record_orders(conn: AsyncConnection, accruals: list[PointsAccrued]) -> None:
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
    await conn.execute(pg.insert(customer_orders).values(rows).on_conflict_do_nothing())
