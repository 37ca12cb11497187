"""Recorded orders (what each earned and what came back), daily earning totals for the cap,
and the credits already applied. Repositories never commit: the unit of work does."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.accounts.repository import among, insert_records, wire_moment
from services.points.db import (
    ledger,
    lines_from_json,
    lines_to_json,
    order_earnings,
    returned_from_json,
    returned_to_json,
)
from services.points.domain.book import Account, Changes, StoredOrder
from services.points.domain.ledger import EntryKind
from services.points.domain.returns import OrderEarning


class OrderRepository:
    """`order_earnings`, `daily_earnings` and the credit lines of the ledger."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def load(
        self,
        accounts_by_id: dict[str, Account],
        order_ids: Sequence[str] = (),
        window_since: datetime | None = None,
    ) -> dict[str, StoredOrder]:
        """Orders named by id (any customer) and, for tiers, the customers' orders since a
        moment. Orders of a loaded account are also attached to it."""
        condition = among(order_earnings.c.order_id, order_ids)
        if window_since is not None:
            in_window = sa.and_(
                among(order_earnings.c.customer_id, accounts_by_id),
                order_earnings.c.occurred_at > window_since,
            )
            condition = sa.or_(condition, in_window)
        rows = await self.conn.execute(sa.select(order_earnings).where(condition))
        found = {row.order_id: order_from_row(row) for row in rows}
        for order in found.values():
            account = accounts_by_id.get(order.customer_id)
            if account is not None:
                account.orders[order.order_id] = order
        return found

    async def save(self, accounts_by_id: dict[str, Account], changes: Changes) -> None:
        """Insert the run's new orders and store the refunds and settlements of the others."""
        changed = (changes.touched_orders | changes.settled_orders) - changes.new_orders
        if not (changes.new_orders or changed):  # none when early writes took them all
            return
        orders = {o.order_id: o for a in accounts_by_id.values() for o in a.orders.values()}
        await self._insert_orders([orders[i] for i in sorted(changes.new_orders)])
        await self._update_orders([orders[i] for i in sorted(changed)])

    async def insert_orders(self, new: list[StoredOrder]) -> None:
        """New orders written ahead of the run's save (`accrual.EarlyWrites`), after their
        lots; the save must then leave them out of `Changes.new_orders`."""
        await self._insert_orders(new)

    async def _insert_orders(self, new: list[StoredOrder]) -> None:
        if not new:
            return
        await insert_records(
            self.conn,
            "order_earnings",
            _ORDER_COLUMNS,
            [_order_record(o) for o in new],
            moments=_ORDER_MOMENTS,
        )

    async def _update_orders(self, changed: list[StoredOrder]) -> None:
        if not changed:
            return
        await self.conn.execute(
            sa.text(
                "UPDATE order_earnings AS o SET refunded_minor = v.refunded,"
                " reversed_points = v.reversed, returned = CAST(v.returned AS jsonb),"
                " settled_at = v.settled_at "
                "FROM unnest(CAST(:ids AS text[]), CAST(:refunded AS bigint[]),"
                " CAST(:reversed AS bigint[]), CAST(:returned AS text[]),"
                " CAST(:settled AS timestamptz[])) AS v(order_id, refunded, reversed, returned,"
                " settled_at) "
                "WHERE o.order_id = v.order_id"
            ),
            {
                "ids": [o.order_id for o in changed],
                "refunded": [o.earning.refunded_minor for o in changed],
                "reversed": [o.earning.reversed_points for o in changed],
                "returned": [returned_to_json(o.earning.returned) for o in changed],
                "settled": [o.settled_at for o in changed],
            },
        )

    async def daily_points(self, keys: Iterable[tuple[str, date]]) -> dict[tuple[str, date], int]:
        """Points already accrued per (customer, programme day), for the daily cap."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        rows = await self.conn.execute(
            sa.text(
                "SELECT d.customer_id, d.day, d.points FROM daily_earnings AS d "
                "JOIN unnest(CAST(:customers AS text[]), CAST(:days AS date[]))"
                " AS k(customer_id, day) USING (customer_id, day)"
            ),
            {"customers": [c for c, _ in wanted], "days": [d for _, d in wanted]},
        )
        return {(row.customer_id, row.day): row.points for row in rows}

    async def add_daily_points(self, changes: Changes) -> None:
        """Add the run's accrued points to each (customer, day) total."""
        if not changes.daily_points:
            return
        keys = sorted(changes.daily_points)
        await self.conn.execute(
            sa.text(
                "INSERT INTO daily_earnings (customer_id, day, points) "
                "SELECT * FROM unnest(CAST(:customers AS text[]), CAST(:days AS date[]),"
                " CAST(:points AS bigint[])) "
                "ON CONFLICT (customer_id, day) DO UPDATE"
                " SET points = daily_earnings.points + excluded.points"
            ),
            {
                "customers": [c for c, _ in keys],
                "days": [d for _, d in keys],
                "points": [changes.daily_points[k] for k in keys],
            },
        )

    async def credits(self, credit_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """Credits already applied, by credit id (customer and points, to tell replays apart)."""
        rows = await self.conn.execute(
            sa.select(ledger.c.reference, ledger.c.customer_id, ledger.c.points).where(
                ledger.c.kind == EntryKind.CREDIT.value, among(ledger.c.reference, credit_ids)
            )
        )
        return {row.reference: (row.customer_id, row.points) for row in rows}


_ORDER_COLUMNS = (
    "order_id",
    "customer_id",
    "merchant_id",
    "event_id",
    "occurred_at",
    "currency",
    "amount_minor",
    "spend_minor",
    "points",
    "refunded_minor",
    "reversed_points",
    "lot_id",
    "lines",
    "returned",
    "settles_at",
    "settled_at",
)
_ORDER_MOMENTS = frozenset({"occurred_at", "settles_at", "settled_at"})


def _order_record(order: StoredOrder) -> tuple[Any, ...]:
    """A new order in the order of `_ORDER_COLUMNS` (JSON as text, the lot id as text,
    moments as `wire_moment`s)."""
    earning = order.earning
    settled_at = order.settled_at
    return (
        earning.order_id,
        order.customer_id,
        order.merchant_id,
        order.event_id,
        wire_moment(order.occurred_at),
        order.currency,
        earning.amount_minor,
        order.spend_minor,
        earning.points,
        earning.refunded_minor,
        earning.reversed_points,
        earning.lot_id,
        lines_to_json(earning.lines),
        returned_to_json(earning.returned),
        wire_moment(order.settles_at or order.occurred_at),
        None if settled_at is None else wire_moment(settled_at),
    )


def order_from_row(row: Any) -> StoredOrder:
    return StoredOrder(
        earning=OrderEarning(
            order_id=row.order_id,
            points=row.points,
            amount_minor=row.amount_minor,
            refunded_minor=row.refunded_minor,
            reversed_points=row.reversed_points,
            lot_id=str(row.lot_id) if row.lot_id else None,
            lines=lines_from_json(row.lines),
            returned=returned_from_json(row.returned),
        ),
        customer_id=row.customer_id,
        merchant_id=row.merchant_id,
        event_id=row.event_id,
        occurred_at=row.occurred_at,
        currency=row.currency,
        spend_minor=row.spend_minor,
        settles_at=row.settles_at,
        settled_at=row.settled_at,
    )
