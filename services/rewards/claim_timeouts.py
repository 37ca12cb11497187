"""Catalogue claims the points service never answered: cancelled, and their debit undone.

A claim waits in `requested` until `points.debited` or `points.debit_rejected` arrives.
If the points service never answers (its consumer is down, the request was dead-lettered),
the claim would hold its unit of stock and the customer's attention forever. After
`waited` (REWARDS_CLAIM_TIMEOUT_SECONDS) this job cancels it: the unit goes back to stock,
the claim becomes `cancelled` (reason `points_timeout`), and
`points.debit_reversal_requested` is sent.

Why this is safe whatever the points service did: the reversal request is keyed by the
customer, like the debit request, and leaves the outbox after it, so the points service
reads it after the debit request. A debit it made is given back (`points.debit_reversed`
-> the claim becomes `compensated`); a debit it rejected or never made gives nothing back
(`points.debit_rejected` -> `rejected`). A late `points.debited` for the cancelled claim
asks for the reversal once more (the points side applies a reversal once). No voucher is
ever issued for a cancelled claim, so points are never spent without either a voucher or
their return.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import catalogue_claims, catalogue_items
from services.rewards.domain.catalogue import ClaimState
from services.rewards.events import rewards_event
from services.rewards.topics import RewardsTopics
from shared.contracts.envelope import derived_event_id
from shared.outbox import OutboxWriter

DEFAULT_CLAIM_TIMEOUT = timedelta(minutes=5)
TIMEOUT_REASON = "points_timeout"


async def time_out_claims(
    conn: AsyncConnection,
    outbox: OutboxWriter,
    topics: RewardsTopics,
    now: datetime,
    limit: int,
    waited: timedelta = DEFAULT_CLAIM_TIMEOUT,
) -> int:
    """Cancel up to `limit` claims `requested` for longer than `waited`; returns how many.

    Claims the rows with SKIP LOCKED (a claim the consumer is settling right now is left
    for the next pass) and costs O(claims due) through the partial index on `requested`.
    """
    due = (
        await conn.execute(
            sa.select(
                catalogue_claims.c.claim_id,
                catalogue_claims.c.customer_id,
                catalogue_claims.c.item_id,
            )
            .where(
                catalogue_claims.c.state == ClaimState.REQUESTED.value,
                catalogue_claims.c.created_at <= now - waited,
            )
            .order_by(catalogue_claims.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not due:
        return 0
    await conn.execute(
        sa.update(catalogue_claims)
        .where(catalogue_claims.c.claim_id.in_([row.claim_id for row in due]))
        .values(state=ClaimState.CANCELLED.value, reason=TIMEOUT_REASON, updated_at=now)
    )
    await _release_units(conn, Counter(row.item_id for row in due))
    for row in due:
        data = {"debit_id": str(row.claim_id), "reason": TIMEOUT_REASON}
        cause = derived_event_id(row.claim_id, TIMEOUT_REASON)
        ask = rewards_event("points.debit_reversal_requested", row.customer_id, cause, now, data)
        outbox.emit(topics.rewards, ask)
    return len(due)


async def _release_units(conn: AsyncConnection, units: Counter[str]) -> None:
    # Items in sorted order: concurrent claims lock item rows too, always one at a time.
    for item_id in sorted(units):
        await conn.execute(
            sa.update(catalogue_items)
            .where(catalogue_items.c.item_id == item_id)
            .values(units_claimed=catalogue_items.c.units_claimed - units[item_id])
        )
