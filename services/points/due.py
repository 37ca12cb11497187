"""Due-time work claimed in batches, shared by settlement, expiry and the tier review.

Rows come due through a partial index on their due column; each batch claims them with
`FOR UPDATE SKIP LOCKED` (two instances never take the same row) and applies them in one
transaction, so the work is safe with several instances and costs O(rows due).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

ApplyBatch = Callable[[AsyncConnection], Awaitable[tuple[int, int]]]
"""Claims and applies one batch in the given transaction; returns (applied, claimed)."""


async def run_in_batches(engine: AsyncEngine, apply_batch: ApplyBatch, batch_size: int) -> int:
    """Run `apply_batch` one transaction at a time until nothing more is due.

    Stops after a short batch (nothing left) or one that applied nothing (everything left
    is busy and waits for the next run); returns the rows applied.
    """
    total = 0
    while True:
        async with engine.begin() as conn:
            applied, claimed = await apply_batch(conn)
        total += applied
        if claimed < batch_size or applied == 0:
            return total


async def claim_due(
    conn: AsyncConnection,
    columns: Sequence[sa.ColumnElement[Any]],
    *,
    due_at: sa.ColumnElement[Any],
    now: datetime,
    batch_size: int,
    also: Sequence[sa.ColumnElement[bool]] = (),
) -> Sequence[sa.Row[Any]]:
    """Lock up to `batch_size` rows due by `now`, earliest first, skipping rows locked elsewhere."""
    return (
        await conn.execute(
            sa.select(*columns)
            .where(*also, due_at <= now)
            .order_by(due_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    ).all()
