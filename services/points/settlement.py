"""The settlement job: `points.settled` once per recorded order when its return window ends.

A due-time job in the style of `expiry`: safe with several instances and O(orders due):
- due orders are claimed through a partial index (`order_earnings.settles_at WHERE
  settled_at IS NULL`) with `FOR UPDATE SKIP LOCKED`, so two instances never take the
  same order;
- the customer's account is taken with `SKIP LOCKED` too: an account busy in a consumer
  or an HTTP request is left to the next run, never waited for (no deadlock);
- each batch is one transaction: `settled_at`, the account's settled totals, a tier
  raised by the settlement and the outgoing events (outbox) commit together, so each
  order settles exactly once, whoever runs the job and however often.
Each order is judged at its own `settles_at`, so a job that runs late gives the same
answer; `now` comes from the caller (an injectable clock).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.points.accounting import settle_order
from services.points.book import Changes, StoredOrder
from services.points.db import order_earnings
from services.points.domain.moments import add_months, require_aware
from services.points.due import claim_due, run_in_batches
from services.points.repository import load_orders, lock_accounts_if_free
from services.points.rules import load_rule_book
from services.points.writes import save_changes
from shared.contracts.topics import Topics
from shared.outbox import OutboxWriter


async def settle_due_orders(
    engine: AsyncEngine, now: datetime, *, points_topic: str = Topics.POINTS, batch_size: int = 500
) -> int:
    """Settle every order whose return window ended by `now`; returns the orders settled."""
    require_aware(now, "now")
    return await run_in_batches(
        engine, lambda conn: settle_batch(conn, now, points_topic, batch_size), batch_size
    )


async def settle_batch(
    conn: AsyncConnection, now: datetime, points_topic: str, batch_size: int
) -> tuple[int, int]:
    """Claim up to `batch_size` due orders and settle those whose account is free.

    Returns (orders settled, orders claimed).
    """
    claimed = await claim_due(
        conn,
        [order_earnings.c.order_id, order_earnings.c.customer_id],
        due_at=order_earnings.c.settles_at,
        now=now,
        batch_size=batch_size,
        also=[order_earnings.c.settled_at.is_(None)],
    )
    if not claimed:
        return 0, 0
    found = await lock_accounts_if_free(conn, {row.customer_id for row in claimed})
    if not found:
        return 0, len(claimed)
    book = await load_rule_book(conn)
    due_ids = [row.order_id for row in claimed if row.customer_id in found]
    orders = await load_orders(conn, found, due_ids)
    earliest = min(o.settles_at or o.occurred_at for o in orders.values())
    # The tier window ending at the earliest settlement: every order that can count.
    await load_orders(conn, found, window_since=add_months(earliest, -book.longest_window_months))
    changes, outbox = Changes(), OutboxWriter()
    for order in sorted(orders.values(), key=_due_key):
        account = found[order.customer_id]
        at = order.settles_at or order.occurred_at
        for event in settle_order(
            account, account.orders[order.order_id], book.in_force(at), max(now, at), changes
        ):
            outbox.emit(points_topic, event)
    await save_changes(conn, found, changes)
    await outbox.flush(conn)
    return len(changes.settled_orders), len(claimed)


def _due_key(order: StoredOrder) -> tuple[datetime, str]:
    return (order.settles_at or order.occurred_at, order.order_id)
