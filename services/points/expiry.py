"""Due-time jobs: expiring lots, and the yearly tier review (settlement: `settlement`).

Both are safe with several instances and cost O(work due), never O(all customers):
- work is claimed through partial indexes (`lots.expires_at WHERE remaining > 0`,
  `accounts.next_review_at WHERE NOT NULL`) with `FOR UPDATE SKIP LOCKED`, so two
  instances never take the same lot or account;
- an account busy in a consumer or an HTTP request is skipped (`SKIP LOCKED`), never
  waited for, and its work is picked up by the next run; a job therefore never holds a
  lock someone else waits on while itself waiting, so it cannot deadlock with them;
- each batch is one transaction: ledger entries, lot counters and the outgoing events
  (through the outbox) commit together.
Both take `now` from the caller (an injectable clock), so tests can jump in time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.points.accounting import expire_claimed_lots, review_tier
from services.points.book import Changes
from services.points.db import accounts, lots
from services.points.domain.moments import add_months, require_aware
from services.points.due import claim_due, run_in_batches
from services.points.repository import load_orders, lock_accounts_if_free
from services.points.rules import load_rule_book
from services.points.settlement import settle_due_orders
from services.points.writes import save_changes
from shared.contracts.topics import Topics
from shared.errors import is_transient
from shared.outbox import OutboxWriter

log = logging.getLogger(__name__)


async def expire_due_points(
    engine: AsyncEngine, now: datetime, *, points_topic: str = Topics.POINTS, batch_size: int = 500
) -> int:
    """Expire every lot due at `now`, one batch per transaction; returns the lots expired."""
    require_aware(now, "now")
    return await run_in_batches(
        engine, lambda conn: expire_batch(conn, now, points_topic, batch_size), batch_size
    )


async def expire_batch(
    conn: AsyncConnection, now: datetime, points_topic: str, batch_size: int
) -> tuple[int, int]:
    """Claim up to `batch_size` due lots and expire those whose account is free.

    Returns (lots expired, lots claimed).
    """
    claimed = await claim_due(
        conn,
        [lots.c.lot_id, lots.c.customer_id],
        due_at=lots.c.expires_at,
        now=now,
        batch_size=batch_size,
        also=[lots.c.remaining > 0],
    )
    if not claimed:
        return 0, 0
    found = await lock_accounts_if_free(conn, {row.customer_id for row in claimed})
    changes, outbox = Changes(), OutboxWriter()
    for customer_id, account in found.items():
        mine = {str(row.lot_id) for row in claimed if row.customer_id == customer_id}
        for event in expire_claimed_lots(account, mine, now, changes):
            outbox.emit(points_topic, event)
    await save_changes(conn, found, changes)
    await outbox.flush(conn)
    return len(changes.ledger), len(claimed)


async def review_due_tiers(
    engine: AsyncEngine, now: datetime, *, points_topic: str = Topics.POINTS, batch_size: int = 200
) -> int:
    """Run every yearly tier review due at `now`; returns the accounts reviewed."""
    require_aware(now, "now")
    return await run_in_batches(
        engine, lambda conn: review_batch(conn, now, points_topic, batch_size), batch_size
    )


async def review_batch(
    conn: AsyncConnection, now: datetime, points_topic: str, batch_size: int
) -> tuple[int, int]:
    """Review up to `batch_size` accounts whose review date has come.

    Each is judged on the window ending at its own review date (not at `now`), so a job
    that runs late gives the same answer; a customer whose reviews were missed for two
    years is reviewed twice, dropping at most one level each time. Returns (reviewed,
    claimed).
    """
    due = [
        row.customer_id
        for row in await claim_due(
            conn,
            [accounts.c.customer_id],
            due_at=accounts.c.next_review_at,
            now=now,
            batch_size=batch_size,
        )
    ]
    found = await lock_accounts_if_free(conn, due)
    if not found:
        return 0, 0
    book = await load_rule_book(conn)
    earliest = min(a.next_review_at for a in found.values() if a.next_review_at is not None)
    await load_orders(conn, found, window_since=add_months(earliest, -book.longest_window_months))
    changes, outbox = Changes(), OutboxWriter()
    for account in found.values():
        review_at = account.next_review_at
        assert review_at is not None
        rules = book.in_force(review_at)
        for event in review_tier(account, rules, review_at, max(now, review_at), changes):
            outbox.emit(points_topic, event)
    await save_changes(conn, found, changes)
    await outbox.flush(conn)
    return len(found), len(due)


@dataclass(frozen=True)
class JobBatches:
    """Rows each due-time job claims per transaction (`POINTS_*_BATCH`)."""

    settlement: int = 500
    expiry: int = 500
    review: int = 200


async def run_due_jobs(
    engine: AsyncEngine,
    clock: Callable[[], datetime],
    stopping: asyncio.Event,
    *,
    points_topic: str = Topics.POINTS,
    interval_seconds: float = 60.0,
    batches: JobBatches = JobBatches(),
) -> None:
    """Run the jobs every `interval_seconds` until `stopping` is set (for the app's lifespan).

    Settlement runs first (a window ends before the points it freed can expire), and before
    the review, so a review counts every order settled by then.

    Transient faults (database down) are logged and retried at the next tick.
    """
    while not stopping.is_set():
        try:
            now = clock()
            topic = points_topic
            await settle_due_orders(engine, now, points_topic=topic, batch_size=batches.settlement)
            await expire_due_points(engine, now, points_topic=topic, batch_size=batches.expiry)
            await review_due_tiers(engine, now, points_topic=topic, batch_size=batches.review)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("points jobs: transient fault, retrying next tick: %s", exc)
        try:
            await asyncio.wait_for(stopping.wait(), timeout=interval_seconds)
        except TimeoutError:
            pass
