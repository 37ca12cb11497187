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
from typing import TYPE_CHECKING

from shared.contracts.envelope import EventEnvelope
from shared.contracts.points import AccountSnapshot, PointsAccrued, PointsSettled

if TYPE_CHECKING:
    from services.rewards.uow import RewardsUnitOfWork


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
    ["RewardsUnitOfWork", EventEnvelope, CustomerView | None, CustomerView], Awaitable[None]
]


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
    uow: RewardsUnitOfWork, events: Sequence[EventEnvelope], on_change: ViewChange | None = None
) -> dict[str, CustomerView]:
    """Apply a run of points events to the projection; returns the new views."""
    views = await uow.customers.load_views([e.customer_id for e in events], lock=True)
    changed: dict[str, CustomerView] = {}
    for event in events:
        before = changed.get(event.customer_id) or views.get(event.customer_id)
        after = _advance(before, event)
        changed[event.customer_id] = after
        if on_change is not None:
            await on_change(uow, event, before, after)
    await uow.customers.save_views(list(changed.values()))
    await uow.customers.record_orders([e for e in events if isinstance(e, PointsAccrued)])
    return changed
