"""Green channel for held compensations and late decisions (DOMAIN.md section 2).

Every complaint reaches a manager within 12 hours and gets an answer within 24. Claims
already escalate at 12 hours (`claims.escalate_due_claims`, `claim.escalated`); this
module does the same for compensations held for review (`compensation.escalated`, on
the operations topic), and announces, once each, every claim and held compensation still
undecided 24 hours on (`review.overdue`, on `loyalty.rewards`), so nobody has to pull a
report to find them.

Each job claims due rows with `FOR UPDATE SKIP LOCKED` through a partial index on the
undecided rows, marks them in the same transaction (`escalated_at`, `overdue_at`) and
writes the event to the outbox there: exactly once per row, whatever the number of
instances. Event ids are derived from the row, so a retried pass re-derives the same id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import compensations, guarantee_claims
from services.rewards.domain.guarantee_claims import DECIDE_WITHIN, ESCALATE_AFTER
from services.rewards.events import rewards_event
from shared.outbox import OutboxWriter


async def _due(
    conn: AsyncConnection,
    table: sa.Table,
    since: sa.Column[Any],
    mark: str,
    cutoff: datetime,
    n: int,
) -> list[Any]:
    query = (
        sa.select(table)
        .where(table.c.status == "in_review", table.c[mark].is_(None), since <= cutoff)
        .order_by(since)
        .limit(n)
        .with_for_update(skip_locked=True)
    )
    return list((await conn.execute(query)).all())


async def escalate_held_compensations(
    conn: AsyncConnection, outbox: OutboxWriter, ops_topic: str, now: datetime, limit: int
) -> int:
    """Emit `compensation.escalated` once for each compensation held 12 hours undecided."""
    table = compensations
    due = await _due(conn, table, table.c.created_at, "escalated_at", now - ESCALATE_AFTER, limit)
    await _mark(
        conn, table.c.compensation_id, [r.compensation_id for r in due], "escalated_at", now
    )
    for row in due:
        data = {
            "compensation_id": str(row.compensation_id),
            "merchant_id": row.merchant_id,
            "order_id": row.order_id,
            "promise_kind": row.promise_kind,
            "tier": row.tier,
            "reasons": list(row.review_reasons) or ["held"],
            "held_since": row.created_at,
            "decide_by": row.created_at + DECIDE_WITHIN,
        }
        event = rewards_event(
            "compensation.escalated", row.customer_id, row.compensation_id, now, data
        )
        outbox.emit(ops_topic, event)
    return len(due)


async def announce_overdue_compensations(
    conn: AsyncConnection, outbox: OutboxWriter, topic: str, now: datetime, limit: int
) -> int:
    """Emit `review.overdue` once for each compensation held 24 hours undecided."""
    table = compensations
    due = await _due(conn, table, table.c.created_at, "overdue_at", now - DECIDE_WITHIN, limit)
    await _mark(conn, table.c.compensation_id, [r.compensation_id for r in due], "overdue_at", now)
    for row in due:
        data = _overdue(row, "compensation", row.compensation_id, row.created_at)
        data["reasons"] = list(row.review_reasons)
        event = rewards_event("review.overdue", row.customer_id, row.compensation_id, now, data)
        outbox.emit(topic, event)
    return len(due)


async def announce_overdue_claims(
    conn: AsyncConnection, outbox: OutboxWriter, topic: str, now: datetime, limit: int
) -> int:
    """Emit `review.overdue` once for each guarantee claim undecided 24 hours after filing."""
    table = guarantee_claims
    due = await _due(conn, table, table.c.filed_at, "overdue_at", now - DECIDE_WITHIN, limit)
    await _mark(conn, table.c.claim_id, [r.claim_id for r in due], "overdue_at", now)
    for row in due:
        data = _overdue(row, "claim", row.claim_id, row.filed_at)
        data["reasons"] = [row.reason] if row.reason else []
        event = rewards_event("review.overdue", row.customer_id, row.claim_id, now, data)
        outbox.emit(topic, event)
    return len(due)


def _overdue(row: Any, subject: str, subject_id: Any, since: datetime) -> dict[str, Any]:
    return {
        "subject": subject,
        "subject_id": str(subject_id),
        "merchant_id": row.merchant_id,
        "order_id": row.order_id,
        "promise_kind": row.promise_kind,
        "since": since,
        "decide_by": since + DECIDE_WITHIN,
    }


async def _mark(
    conn: AsyncConnection, key: sa.Column[Any], ids: list[Any], mark: str, now: datetime
) -> None:
    if ids:
        await conn.execute(sa.update(key.table).where(key.in_(ids)).values({mark: now}))
