"""Milestone rules and the milestones each customer reached (once per idempotency key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import milestone_rules, milestones_reached
from services.rewards.domain.milestones import MilestoneReached


class MilestoneRepository:
    """Milestone rules and reached milestones."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def active_rules(self) -> list[Any]:
        query = sa.select(milestone_rules).where(milestone_rules.c.active)
        return list((await self.conn.execute(query.order_by("rule_key"))).all())

    async def page(self, limit: int, after: str | None) -> list[Any]:
        query = sa.select(milestone_rules)
        if after is not None:
            query = query.where(milestone_rules.c.rule_key > after)
        query = query.order_by(milestone_rules.c.rule_key).limit(limit)
        return list((await self.conn.execute(query)).all())

    async def save_rule(self, values: dict[str, Any]) -> None:
        statement = pg.insert(milestone_rules).values(**values)
        await self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=["rule_key"],
                set_={k: statement.excluded[k] for k in values if k != "rule_key"},
            )
        )

    async def reach(self, firing: MilestoneReached, at: datetime) -> str | None:
        """Record the firing once; returns its key when this call recorded it, else None."""
        took = await self.conn.scalar(
            pg.insert(milestones_reached)
            .values(
                idempotency_key=firing.idempotency_key,
                customer_id=firing.customer_id,
                rule_key=firing.rule_key,
                occurrence=firing.occurrence,
                reached_at=at,
            )
            .on_conflict_do_nothing()
            .returning(milestones_reached.c.idempotency_key)
        )
        return None if took is None else str(took)
