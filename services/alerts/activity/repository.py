"""Customer activity and the purchase history behind it (`customer_activity`,
`purchase_history`). Every method runs in the unit of work's transaction and never commits."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.db import customer_activity, purchase_history
from services.alerts.domain.activity import ActivitySummary, GapStatistics
from services.alerts.domain.records import CustomerActivity


@dataclass(frozen=True, slots=True)
class TierSighting:
    """A customer's tier as a points event reported it at `seen_at`."""

    customer_id: str
    tier: str
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class PastPurchase:
    customer_id: str
    event_id: uuid.UUID
    purchased_at: datetime
    merchant_id: str
    amount_minor: int


_SET_DUE = (
    "UPDATE customer_activity AS ca SET {column} = d.due, updated_at = now() "
    "FROM unnest(CAST(:ids AS text[]), CAST(:dues AS timestamptz[])) AS d(id, due) "
    "WHERE ca.customer_id = d.id"
)
_SET_NEXT_CHECKS = sa.text(_SET_DUE.format(column="next_check_at"))
_SET_FOLLOW_UPS_DUE = sa.text(_SET_DUE.format(column="follow_up_due_at"))

_RECORD_TIERS = sa.text(
    "INSERT INTO customer_activity AS ca (customer_id, tier, tier_changed_at) "
    "SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:tiers AS text[]),"
    " CAST(:ats AS timestamptz[])) "
    "ON CONFLICT (customer_id) DO UPDATE SET tier = excluded.tier,"
    " tier_changed_at = excluded.tier_changed_at, updated_at = now() "
    "WHERE ca.tier IS DISTINCT FROM excluded.tier"
    " AND (ca.tier_changed_at IS NULL OR ca.tier_changed_at <= excluded.tier_changed_at)"
)

_RECORD_PURCHASES = sa.text(
    "INSERT INTO purchase_history (customer_id, event_id, purchased_at, merchant_id,"
    " amount_minor) SELECT * FROM unnest(CAST(:customers AS text[]), CAST(:events AS uuid[]),"
    " CAST(:ats AS timestamptz[]), CAST(:merchants AS text[]), CAST(:amounts AS bigint[]))"
    " ON CONFLICT DO NOTHING"
)


class ActivityRepository:
    """One row per customer: the summary, spend by merchant and category, tier, due times."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def lock(self, customer_ids: Iterable[str]) -> dict[str, CustomerActivity]:
        """The stored activity of these customers, row-locked (in id order: never deadlocking)."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        query = (
            sa.select(customer_activity)
            .where(customer_activity.c.customer_id.in_(ids))
            .order_by(customer_activity.c.customer_id)
            .with_for_update()
        )
        rows = (await self.conn.execute(query)).mappings().all()
        return {row["customer_id"]: activity_from_row(row) for row in rows}

    async def save(self, activities: Iterable[CustomerActivity]) -> None:
        rows = [activity_to_row(a) for a in activities]
        if not rows:
            return
        statement = pg_insert(customer_activity)
        updated: dict[str, Any] = {
            name: statement.excluded[name] for name in rows[0] if name != "customer_id"
        }
        updated["updated_at"] = sa.func.now()
        await self.conn.execute(
            statement.on_conflict_do_update(index_elements=["customer_id"], set_=updated), rows
        )

    async def get(self, customer_id: str) -> CustomerActivity | None:
        """One customer's activity, unlocked (for reading, e.g. over HTTP)."""
        query = sa.select(customer_activity).where(customer_activity.c.customer_id == customer_id)
        row = (await self.conn.execute(query)).mappings().first()
        return None if row is None else activity_from_row(row)

    async def claim_due_lapse_checks(self, now: datetime, limit: int) -> list[CustomerActivity]:
        """Customers whose lapse verdict may have changed by `now`, oldest due first.

        A range scan of the partial index on `next_check_at`: the cost follows the number due,
        never the number of customers. SKIP LOCKED lets several scanners (and the consumer)
        work side by side, each on rows nobody else holds.
        """
        return await self._claim(customer_activity.c.next_check_at, now, limit)

    async def claim_due_follow_ups(self, now: datetime, limit: int) -> list[CustomerActivity]:
        """Customers whose follow-up is due by `now` (as the lapse checks, by its own index)."""
        return await self._claim(customer_activity.c.follow_up_due_at, now, limit)

    async def _claim(
        self, due: sa.Column[Any], now: datetime, limit: int
    ) -> list[CustomerActivity]:
        query = (
            sa.select(customer_activity)
            .where(due <= now)
            .order_by(due)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = (await self.conn.execute(query)).mappings().all()
        return [activity_from_row(row) for row in rows]

    async def pending_after(self, after: str, limit: int) -> list[CustomerActivity]:
        """The next `limit` customers after `after` (id order) with a lapse check or follow-up
        pending, row-locked; rows another transaction holds are skipped."""
        query = (
            sa.select(customer_activity)
            .where(
                customer_activity.c.customer_id > after,
                sa.or_(
                    customer_activity.c.next_check_at.isnot(None),
                    customer_activity.c.follow_up_due_at.isnot(None),
                ),
            )
            .order_by(customer_activity.c.customer_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [activity_from_row(r) for r in (await self.conn.execute(query)).mappings().all()]

    async def set_next_checks(self, due: Mapping[str, datetime | None]) -> None:
        if due:
            params = {"ids": list(due), "dues": list(due.values())}
            await self.conn.execute(_SET_NEXT_CHECKS, params)

    async def set_follow_ups_due(self, due: Mapping[str, datetime | None]) -> None:
        if due:
            params = {"ids": list(due), "dues": list(due.values())}
            await self.conn.execute(_SET_FOLLOW_UPS_DUE, params)

    async def mark_follow_ups_raised(
        self, customer_ids: Sequence[str], raised_at: datetime
    ) -> None:
        if not customer_ids:
            return
        await self.conn.execute(
            sa.update(customer_activity)
            .where(customer_activity.c.customer_id.in_(customer_ids))
            .values(follow_up_due_at=None, follow_up_raised_at=raised_at, updated_at=sa.func.now())
        )

    async def record_tiers(self, sightings: Iterable[TierSighting]) -> None:
        """Remember each customer's tier; an older sighting never overwrites a newer tier.

        `tier_changed_at` is when the stored tier was first seen (a `tier.changed` event, or
        the first snapshot that showed it), so a late snapshot of the previous tier loses. One
        sighting per customer (the caller keeps the latest), in id order so writers lock alike.
        """
        chosen = sorted(sightings, key=lambda s: s.customer_id)
        if not chosen:
            return
        await self.conn.execute(
            _RECORD_TIERS,
            {
                "ids": [s.customer_id for s in chosen],
                "tiers": [s.tier for s in chosen],
                "ats": [s.seen_at for s in chosen],
            },
        )


class PurchaseHistoryRepository:
    """Every purchase ever consumed (late purchases and the backtest replay from it)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def record(self, purchases: Sequence[PastPurchase]) -> None:
        """Keep every purchase (one statement per batch); a repeated event id changes nothing."""
        if not purchases:
            return
        await self.conn.execute(
            _RECORD_PURCHASES,
            {
                "customers": [p.customer_id for p in purchases],
                "events": [p.event_id for p in purchases],
                "ats": [p.purchased_at for p in purchases],
                "merchants": [p.merchant_id for p in purchases],
                "amounts": [p.amount_minor for p in purchases],
            },
        )

    async def times(self, customer_ids: Iterable[str]) -> dict[str, list[datetime]]:
        """Every recorded purchase time of these customers."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        query = sa.select(purchase_history.c.customer_id, purchase_history.c.purchased_at).where(
            purchase_history.c.customer_id.in_(ids)
        )
        times: dict[str, list[datetime]] = {c: [] for c in ids}
        for row in (await self.conn.execute(query)).all():
            times[row.customer_id].append(row.purchased_at)
        return times

    async def until(self, until: datetime, merchant_id: str | None = None) -> list[PastPurchase]:
        """Every recorded purchase up to `until` (of the customers who ever bought at the
        merchant, if one is named: their home merchant is decided from all their purchases)."""
        query = sa.select(purchase_history).where(purchase_history.c.purchased_at <= until)
        if merchant_id is not None:
            buyers = sa.select(purchase_history.c.customer_id).where(
                purchase_history.c.merchant_id == merchant_id
            )
            query = query.where(purchase_history.c.customer_id.in_(buyers))
        rows = (await self.conn.execute(query)).all()
        return [
            PastPurchase(r.customer_id, r.event_id, r.purchased_at, r.merchant_id, r.amount_minor)
            for r in rows
        ]


def activity_from_row(row: Mapping[Any, Any]) -> CustomerActivity:
    summary = ActivitySummary(
        first_purchase_at=row["first_purchase_at"],
        last_purchase_at=row["last_purchase_at"],
        purchase_count=row["purchase_count"],
        visit_count=row["visit_count"],
        spend_minor=row["spend_minor"],
        gaps=GapStatistics(
            row["gap_count"], row["gap_mean_days"], row["gap_sum_squared_deviations"]
        ),
        merchant_ids=frozenset(row["merchant_ids"]),
        late_purchase_count=row["late_purchase_count"],
    )
    return CustomerActivity(
        customer_id=row["customer_id"],
        summary=summary,
        currency=row["currency"],
        merchant_spend_minor={k: int(v) for k, v in row["merchant_spend_minor"].items()},
        category_spend_minor={k: int(v) for k, v in row["category_spend_minor"].items()},
        first_merchant_id=row["first_merchant_id"],
        first_store_id=row["first_store_id"],
        tier=row["tier"],
        next_check_at=row["next_check_at"],
        follow_up_due_at=row["follow_up_due_at"],
        follow_up_raised_at=row["follow_up_raised_at"],
    )


def activity_to_row(activity: CustomerActivity) -> dict[str, Any]:
    summary = activity.summary
    return {
        "customer_id": activity.customer_id,
        "first_purchase_at": summary.first_purchase_at,
        "last_purchase_at": summary.last_purchase_at,
        "purchase_count": summary.purchase_count,
        "visit_count": summary.visit_count,
        "late_purchase_count": summary.late_purchase_count,
        "spend_minor": summary.spend_minor,
        "currency": activity.currency,
        "gap_count": summary.gaps.count,
        "gap_mean_days": summary.gaps.mean_days,
        "gap_sum_squared_deviations": summary.gaps.sum_squared_deviations,
        "merchant_ids": sorted(summary.merchant_ids),
        "merchant_spend_minor": dict(activity.merchant_spend_minor),
        "category_spend_minor": dict(activity.category_spend_minor),
        "first_merchant_id": activity.first_merchant_id,
        "first_store_id": activity.first_store_id,
        "tier": activity.tier,
        "next_check_at": activity.next_check_at,
        "follow_up_due_at": activity.follow_up_due_at,
        "follow_up_raised_at": activity.follow_up_raised_at,
    }
