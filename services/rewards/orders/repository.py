"""The orders this service recorded from `pos.purchases`: what compensation is paid on.

Why `pos.purchases` and not the points events: compensation must rest on what the
customer paid, and the points service does not see every purchase the way this service
needs it. It dead-letters purchases it cannot earn on, a purchase may earn 0 points, and
its events carry points, not the amount. Consuming the point-of-sale topic directly gives
every purchase with its amount and currency, in the customer's order (key = customer), with
no change to the points contract.

A return reduces the order (`order_returns`, once per return id): compensation is based on
what is still paid for. An incident or claim for an order not recorded yet waits in
`held_reports`; the purchase's arrival releases it in the same transaction, and the row is
deleted there, so it is judged exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import among, held_reports, order_returns, orders
from services.rewards.domain.guarantee import Measurement, MeasureUnit
from services.rewards.domain.guarantee_claims import KnownOrder
from shared.contracts.pos import PurchaseCompleted, PurchaseReturned

ORDER_UNKNOWN = "order_unknown"


class OrderRepository:
    """Recorded orders, their returns, and the reports waiting for an order."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def recorded(self, order_ids: Iterable[str]) -> dict[str, KnownOrder]:
        """The recorded orders among `order_ids`, in one read."""
        wanted = sorted(set(order_ids))
        if not wanted:
            return {}
        rows = await self.conn.execute(sa.select(orders).where(among(orders.c.order_id, wanted)))
        return {
            row.order_id: KnownOrder(
                row.order_id,
                row.customer_id,
                row.merchant_id,
                row.ordered_at,
                int(row.amount_minor),
                row.currency,
                int(row.returned_minor),
            )
            for row in rows
        }

    async def record_purchases(self, events: Sequence[PurchaseCompleted]) -> list[str]:
        """Record each purchase once (the first record of an order id stands); returns new ids."""
        rows = [
            {
                "order_id": e.data.order_id,
                "customer_id": e.customer_id,
                "merchant_id": e.data.merchant_id,
                "amount_minor": e.data.amount_minor,
                "currency": e.data.currency,
                "ordered_at": e.occurred_at,
            }
            for e in events
        ]
        inserted = await self.conn.execute(
            pg.insert(orders).values(rows).on_conflict_do_nothing().returning(orders.c.order_id)
        )
        new = [row.order_id for row in inserted]
        await self._recount_returns(new)
        return new

    async def record_returns(self, events: Sequence[PurchaseReturned]) -> None:
        """Record each return once (by return id) and reduce its order by the amount refunded."""
        rows = [
            {
                "return_id": e.data.return_id,
                "order_id": e.data.order_id,
                "refunded_minor": e.data.refunded_minor,
                "currency": e.data.currency,
                "returned_at": e.occurred_at,
            }
            for e in events
        ]
        await self.conn.execute(pg.insert(order_returns).values(rows).on_conflict_do_nothing())
        await self._recount_returns([e.data.order_id for e in events])

    async def _recount_returns(self, order_ids: list[str]) -> None:
        """An order's returned amount is the sum of its returns (a return may come first)."""
        if not order_ids:
            return
        returned = (
            sa.select(sa.func.coalesce(sa.func.sum(order_returns.c.refunded_minor), 0))
            .where(order_returns.c.order_id == orders.c.order_id)
            .scalar_subquery()
        )
        await self.conn.execute(
            sa.update(orders)
            .where(orders.c.order_id.in_(sorted(set(order_ids))))
            .values(returned_minor=returned)
        )

    async def hold(self, values: dict[str, Any]) -> None:
        """Keep an incident or claim until its order is recorded (once per trigger)."""
        await self.conn.execute(pg.insert(held_reports).values(**values).on_conflict_do_nothing())

    async def take_held(self, order_ids: list[str]) -> list[dict[str, Any]]:
        """Remove and return the reports waiting for these orders, in the order they arrived."""
        if not order_ids:
            return []
        rows = await self.conn.execute(
            sa.delete(held_reports)
            .where(held_reports.c.order_id.in_(sorted(set(order_ids))))
            .returning(held_reports)
        )
        return sorted((dict(r._mapping) for r in rows), key=lambda r: r["arrival"])


def held_measurement(row: dict[str, Any]) -> Measurement:
    return Measurement(int(row["measured_value"]), MeasureUnit(row["measured_unit"]))


def held_values(
    trigger_ref: str,
    order_id: str,
    customer_id: str,
    merchant_id: str,
    promise_kind: str,
    measured: Measurement,
    trigger: str,
    at: datetime,
    claim_id: Any = None,
) -> dict[str, Any]:
    return {
        "trigger_ref": trigger_ref,
        "order_id": order_id,
        "customer_id": customer_id,
        "merchant_id": merchant_id,
        "promise_kind": promise_kind,
        "measured_value": measured.value,
        "measured_unit": measured.unit.value,
        "trigger": trigger,
        "claim_id": claim_id,
        "at": at,
    }
