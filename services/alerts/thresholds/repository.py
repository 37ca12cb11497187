"""Stored threshold scopes (`alert_thresholds`); runs in the unit of work, never commits."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.db import alert_thresholds
from services.alerts.domain.thresholds import ThresholdBook, ThresholdOverrides, ThresholdScope

log = logging.getLogger(__name__)

ScopeRow = Mapping[Any, Any]


class ThresholdRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def book(self) -> ThresholdBook:
        """Every stored scope in force (a scope out of today's ranges is skipped, logged)."""
        book = ThresholdBook()
        for row in await self.scopes():
            overrides = stored_overrides(row)
            if overrides is None:
                continue
            scope = ThresholdScope(row["scope"])
            if scope is ThresholdScope.DEFAULT:
                book.default = overrides
            elif scope is ThresholdScope.MERCHANT:
                book.by_merchant[row["scope_id"]] = overrides
            else:
                book.by_category[row["scope_id"]] = overrides
        return book

    async def scopes(
        self, after: tuple[str, str] | None = None, limit: int | None = None
    ) -> Sequence[ScopeRow]:
        """Stored scopes' rows by (scope, scope id): after `after`, at most `limit` of them."""
        key = sa.tuple_(alert_thresholds.c.scope, alert_thresholds.c.scope_id)
        query = sa.select(alert_thresholds).order_by(
            alert_thresholds.c.scope, alert_thresholds.c.scope_id
        )
        if after is not None:
            query = query.where(key > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
        if limit is not None:
            query = query.limit(limit)
        return (await self.conn.execute(query)).mappings().all()

    async def put(
        self, scope: ThresholdScope, scope_id: str, overrides: ThresholdOverrides
    ) -> None:
        """Store one scope's overrides (the caller checks them with `merged` first)."""
        key = "" if scope is ThresholdScope.DEFAULT else scope_id
        settings = overrides.model_dump(exclude_none=True)
        statement = pg_insert(alert_thresholds).values(
            scope=scope.value, scope_id=key, settings=settings
        )
        await self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=["scope", "scope_id"],
                set_={"settings": settings, "updated_at": sa.func.now()},
            )
        )


def stored_overrides(row: ScopeRow) -> ThresholdOverrides | None:
    """A stored scope, re-checked against today's ranges; None (logged) if it breaks one.

    A value written before the ranges existed, or straight into the table, must not take the
    consumer or a scheduler down: the scope is skipped and the wider scope applies.
    """
    try:
        return ThresholdOverrides.model_validate(row["settings"])
    except ValidationError as exc:
        log.error(
            "thresholds of scope %s/%s ignored, a stored value is out of range: %s",
            row["scope"],
            row["scope_id"] or "-",
            exc.errors(include_url=False),
        )
        return None
