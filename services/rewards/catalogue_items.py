"""Catalogue items as admins create and change them.

A change may not leave fewer units (or less budget) than claims already hold: the check
runs on the locked item row before anything is written (claims lock the same row), so it
answers 409 problem+json naming the field instead of the database's CHECK failing.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import catalogue_items
from services.rewards.domain.catalogue import supply_below_claimed
from shared.errors import Conflict


class SupplyBelowClaimed(Conflict):
    code, title = "stock_below_claimed", "Less stock or budget than units already claimed"


async def save_item(conn: AsyncConnection, values: dict[str, Any]) -> Any:
    """Create or change a catalogue item; refuses (409, before any write) stock or a budget
    below what claims already hold. The item row is locked, as claims lock it."""
    current = await conn.scalar(
        sa.select(catalogue_items.c.units_claimed)
        .where(catalogue_items.c.item_id == values["item_id"])
        .with_for_update()
    )
    problem = supply_below_claimed(
        int(current or 0), values["total_stock"], values["budget_minor"], values["unit_cost_minor"]
    )
    if problem is not None:
        field, explanation = problem
        raise SupplyBelowClaimed(explanation, field=field, units_claimed=int(current or 0))
    statement = pg.insert(catalogue_items).values(**values, units_claimed=0)
    changeable = [k for k in values if k != "item_id"]
    return (
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["item_id"], set_={k: statement.excluded[k] for k in changeable}
            ).returning(catalogue_items)
        )
    ).one()
