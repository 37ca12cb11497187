"""Catalogue claims as stored, the item rows they hold stock on, and the redemptions the
points service gave back outside the saga.

Lock order, the same on every path: claims first (in id order), then items (in item
order), so the consumer and the timeout job never wait for a claim while holding an item.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import catalogue_claims, catalogue_items, customers, returned_redemptions
from services.rewards.domain.catalogue import ClaimState, holds_stock

_HOLDING = [s.value for s in ClaimState if holds_stock(s)]
# Two keys (customer, idempotency key): no separator to confuse "a:b"+"c" with "a"+"b:c".
_CLAIM_KEY_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext(:customer), hashtext(:key))")


class ClaimRepository:
    """Catalogue claims and the stock they hold."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, claim_id: uuid.UUID, *, lock: bool = False) -> Any:
        query = sa.select(catalogue_claims).where(catalogue_claims.c.claim_id == claim_id)
        return (await self.conn.execute(query.with_for_update() if lock else query)).first()

    async def lock_many(self, claim_ids: set[uuid.UUID]) -> dict[uuid.UUID, Any]:
        """Lock and read the claims, in one statement and in id order."""
        query = (
            sa.select(catalogue_claims)
            .where(catalogue_claims.c.claim_id.in_(sorted(claim_ids)))
            .order_by(catalogue_claims.c.claim_id)
            .with_for_update()
        )
        return {row.claim_id: row for row in await self.conn.execute(query)}

    async def by_idempotency_key(self, customer_id: str, key: str) -> Any:
        """The claim this key made for the customer, if any. Same-key requests queue on a
        lock first, so two at once cannot both find nothing and both insert."""
        await self.conn.execute(_CLAIM_KEY_LOCK, {"customer": customer_id, "key": key})
        query = sa.select(catalogue_claims).where(
            catalogue_claims.c.customer_id == customer_id,
            catalogue_claims.c.idempotency_key == key,
        )
        return (await self.conn.execute(query)).first()

    async def holding_count(self, item_id: str, customer_id: str) -> int:
        """How many units of the item the customer's claims hold now."""
        mine = await self.conn.scalar(
            sa.select(sa.func.count()).where(
                catalogue_claims.c.item_id == item_id,
                catalogue_claims.c.customer_id == customer_id,
                catalogue_claims.c.state.in_(_HOLDING),
            )
        )
        return int(mine or 0)

    async def claimant(self, customer_id: str) -> Any:
        """The customer's tier and available points as the projection has them, or None."""
        query = sa.select(customers.c.tier, customers.c.available).where(
            customers.c.customer_id == customer_id
        )
        return (await self.conn.execute(query)).first()

    async def add(self, values: dict[str, Any]) -> None:
        await self.conn.execute(sa.insert(catalogue_claims).values(**values))

    async def set_state(
        self, claim_id: uuid.UUID, state: ClaimState, now: datetime, **more: Any
    ) -> None:
        await self.conn.execute(
            sa.update(catalogue_claims)
            .where(catalogue_claims.c.claim_id == claim_id)
            .values(state=state.value, updated_at=now, **more)
        )

    async def remember_redemption(self, claim_id: uuid.UUID, redemption_id: str) -> None:
        await self.conn.execute(
            sa.update(catalogue_claims)
            .where(catalogue_claims.c.claim_id == claim_id)
            .values(redemption_id=redemption_id)
        )

    async def take_units(self, item_id: str, units: int) -> None:
        """Raise (positive) or release (negative) the item's claimed units."""
        await self.conn.execute(
            sa.update(catalogue_items)
            .where(catalogue_items.c.item_id == item_id)
            .values(units_claimed=catalogue_items.c.units_claimed + units)
        )

    async def release_units(self, units: Counter[str]) -> None:
        # Items in sorted order: concurrent claims lock item rows too, always one at a time.
        for item_id in sorted(units):
            await self.take_units(item_id, -units[item_id])

    async def cancel_unanswered(
        self, waited_since: datetime, limit: int, now: datetime, reason: str
    ) -> list[Any]:
        """Cancel up to `limit` claims `requested` since `waited_since` or longer (SKIP
        LOCKED: a claim the consumer is settling right now is left for the next pass)."""
        due = (
            await self.conn.execute(
                sa.select(
                    catalogue_claims.c.claim_id,
                    catalogue_claims.c.customer_id,
                    catalogue_claims.c.item_id,
                )
                .where(
                    catalogue_claims.c.state == ClaimState.REQUESTED.value,
                    catalogue_claims.c.created_at <= waited_since,
                )
                .order_by(catalogue_claims.c.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if due:
            await self.conn.execute(
                sa.update(catalogue_claims)
                .where(catalogue_claims.c.claim_id.in_([row.claim_id for row in due]))
                .values(state=ClaimState.CANCELLED.value, reason=reason, updated_at=now)
            )
        return list(due)

    async def record_returned(self, rows: list[dict[str, Any]]) -> list[Any]:
        """Keep every redemption the points service gave back; returns the claims (id,
        voucher) whose debit they were."""
        await self.conn.execute(
            pg.insert(returned_redemptions).values(rows).on_conflict_do_nothing()
        )
        backing = await self.conn.execute(
            sa.select(catalogue_claims.c.claim_id, catalogue_claims.c.voucher_id).where(
                catalogue_claims.c.redemption_id.in_([r["redemption_id"] for r in rows])
            )
        )
        return list(backing.all())
