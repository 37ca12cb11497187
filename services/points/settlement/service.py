"""The settlement job: `points.settled` once per recorded order when its return window ends.

A due-time job (see `jobs`): safe with several instances and O(orders due):
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

from sqlalchemy.ext.asyncio import AsyncEngine

from services.points.domain.book import Account, Changes, StoredOrder
from services.points.domain.moments import add_months, require_aware
from services.points.domain.programme import ProgrammeRules
from services.points.ledger.service import run_in_batches
from services.points.rules.service import rule_book
from services.points.settlement.events import points_settled
from services.points.tiers.service import raise_tier
from services.points.uow import PointsUnitOfWork
from shared.contracts.envelope import EventEnvelope
from shared.contracts.topics import Topics


async def settle_due_orders(
    engine: AsyncEngine, now: datetime, *, points_topic: str = Topics.POINTS, batch_size: int = 500
) -> int:
    """Settle every order whose return window ended by `now`; returns the orders settled."""
    require_aware(now, "now")
    return await run_in_batches(
        engine, now, lambda uow: settle_batch(uow, points_topic, batch_size), batch_size
    )


async def settle_batch(
    uow: PointsUnitOfWork, points_topic: str, batch_size: int
) -> tuple[int, int]:
    """Claim up to `batch_size` due orders and settle those whose account is free.

    Returns (orders settled, orders claimed).
    """
    now = uow.now
    claimed = await uow.settlement.claim_due_orders(now, batch_size)
    if not claimed:
        return 0, 0
    found = await uow.accounts.lock_if_free(row.customer_id for row in claimed)
    if not found:
        return 0, len(claimed)
    book = await rule_book(uow)
    due_ids = [row.order_id for row in claimed if row.customer_id in found]
    orders = await uow.orders.load(found, due_ids)
    earliest = min(o.settles_at or o.occurred_at for o in orders.values())
    # The tier window ending at the earliest settlement: every order that can count.
    await uow.orders.load(found, window_since=add_months(earliest, -book.longest_window_months))
    changes = Changes()
    for order in sorted(orders.values(), key=_due_key):
        account = found[order.customer_id]
        at = order.settles_at or order.occurred_at
        for event in settle_order(
            account, account.orders[order.order_id], book.in_force(at), max(now, at), changes
        ):
            uow.emit(points_topic, event)
    await uow.save(found, changes)
    return len(changes.settled_orders), len(claimed)


def settle_order(
    account: Account, order: StoredOrder, rules: ProgrammeRules, as_of: datetime, changes: Changes
) -> list[EventEnvelope]:
    """The order's return window ended: count what stayed of it, then raise the tier.

    Judged at the order's own `settles_at` (not at the job's clock), so a job that runs late
    gives the same answer. Returns after this keep reversing points but change neither the
    settled totals nor the tier until the yearly review, which counts net settled spend.
    """
    at = order.settles_at or order.occurred_at
    fully_returned = order.earning.fully_returned
    kept = order.earning.points - order.earning.reversed_points
    first = not fully_returned and account.settled_purchase_count == 0
    account.settled_points += kept
    if not fully_returned:
        account.settled_purchase_count += 1
    order.settled_at = at
    changes.settled_orders.add(order.order_id)
    changes.accounts.add(account.customer_id)
    programme = rules.earning.currency_rates
    settled = points_settled(account, order, kept, fully_returned, first, programme, as_of)
    return [settled, *raise_tier(account, order, rules, at, as_of)]


def _due_key(order: StoredOrder) -> tuple[datetime, str]:
    return (order.settles_at or order.occurred_at, order.order_id)
