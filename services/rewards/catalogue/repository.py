"""Catalogue items as stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import catalogue_items


class CatalogueRepository:
    """Catalogue items (the claims on them are `claims.repository`)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, item_id: str, *, lock: bool = False) -> Any:
        """The item row (locked when asked, as claims lock it), or None."""
        query = sa.select(catalogue_items).where(catalogue_items.c.item_id == item_id)
        return (await self.conn.execute(query.with_for_update() if lock else query)).first()

    async def units_claimed(self, item_id: str) -> int:
        """Units the item's claims hold, with the item row locked (0 for a new item)."""
        current = await self.conn.scalar(
            sa.select(catalogue_items.c.units_claimed)
            .where(catalogue_items.c.item_id == item_id)
            .with_for_update()
        )
        return int(current or 0)

    async def save(self, values: dict[str, Any]) -> Any:
        """Insert or change the item; returns the stored row."""
        statement = pg.insert(catalogue_items).values(**values, units_claimed=0)
        changeable = [k for k in values if k != "item_id"]
        return (
            await self.conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["item_id"], set_={k: statement.excluded[k] for k in changeable}
                ).returning(catalogue_items)
            )
        ).one()

    async def page(
        self, limit: int, after: str | None, claimable_at: datetime | None = None
    ) -> list[Any]:
        """Items in id order after `after`; only those claimable at `claimable_at` if given."""
        query = sa.select(catalogue_items)
        if claimable_at is not None:
            query = query.where(
                catalogue_items.c.claimable_from <= claimable_at,
                catalogue_items.c.claimable_until > claimable_at,
            )
        if after is not None:
            query = query.where(catalogue_items.c.item_id > after)
        query = query.order_by(catalogue_items.c.item_id).limit(limit)
        return list((await self.conn.execute(query)).all())
