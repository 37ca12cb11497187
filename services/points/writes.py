"""Writing a run's changes back: a handful of set-based statements per run.

Values are absolute (counters, totals as they are now in memory), which is safe because
the caller holds the accounts' row locks: nobody else changed these rows meanwhile.
The order of statements follows the foreign keys: accounts, lots, ledger, orders, returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.book import Account, Changes, ReturnRecord, StoredOrder
from services.points.db import order_returns
from services.points.domain.lots import Lot
from services.points.repository import lines_to_json, returned_to_json
from shared.db import driver_connection


async def save_changes(
    conn: AsyncConnection, accounts_by_id: dict[str, Account], changes: Changes
) -> None:
    """Write back everything a run changed, in an order the foreign keys accept."""
    await _save_accounts(conn, [accounts_by_id[c] for c in sorted(changes.accounts)])
    every_lot = {
        lot.lot_id: (a.customer_id, lot) for a in accounts_by_id.values() for lot in a.lots
    }
    await _insert_lots(conn, [every_lot[i] for i in sorted(changes.new_lots)])
    touched = sorted(changes.touched_lots - changes.new_lots)
    await _update_lot_counters(conn, [every_lot[i][1] for i in touched if i in every_lot])
    await _insert_ledger(conn, changes)
    orders = {o.order_id: o for a in accounts_by_id.values() for o in a.orders.values()}
    await _insert_orders(conn, [orders[i] for i in sorted(changes.new_orders)])
    await _update_orders(
        conn,
        [
            orders[i]
            for i in sorted((changes.touched_orders | changes.settled_orders) - changes.new_orders)
        ],
    )
    await _insert_returns(conn, list(changes.new_returns.values()))
    await _update_returns(
        conn, [r for k, r in changes.touched_returns.items() if k not in changes.new_returns]
    )
    await _add_daily_points(conn, changes)


async def _save_accounts(conn: AsyncConnection, changed: list[Account]) -> None:
    if not changed:
        return
    await conn.execute(
        sa.text(
            "UPDATE accounts AS a SET tier = v.tier, debt = v.debt,"
            " lifetime_earned = v.lifetime_earned, purchase_count = v.purchase_count,"
            " first_purchase_at = v.first_purchase_at, tier_changed_at = v.tier_changed_at,"
            " next_review_at = v.next_review_at, settled_points = v.settled_points,"
            " settled_purchase_count = v.settled_count "
            "FROM unnest(CAST(:ids AS text[]), CAST(:tiers AS text[]), CAST(:debts AS bigint[]),"
            " CAST(:lifetimes AS bigint[]), CAST(:counts AS integer[]),"
            " CAST(:firsts AS timestamptz[]), CAST(:changed AS timestamptz[]),"
            " CAST(:reviews AS timestamptz[]), CAST(:settled AS bigint[]),"
            " CAST(:settled_counts AS integer[]))"
            " AS v(customer_id, tier, debt, lifetime_earned, purchase_count, first_purchase_at,"
            " tier_changed_at, next_review_at, settled_points, settled_count) "
            "WHERE a.customer_id = v.customer_id"
        ),
        {
            "ids": [a.customer_id for a in changed],
            "tiers": [a.tier.value for a in changed],
            "debts": [a.debt for a in changed],
            "lifetimes": [a.lifetime_earned for a in changed],
            "counts": [a.purchase_count for a in changed],
            "firsts": [a.first_purchase_at for a in changed],
            "changed": [a.tier_changed_at for a in changed],
            "reviews": [a.next_review_at for a in changed],
            "settled": [a.settled_points for a in changed],
            "settled_counts": [a.settled_purchase_count for a in changed],
        },
    )


async def _insert_lots(conn: AsyncConnection, new: list[tuple[str, Lot]]) -> None:
    if not new:
        return
    await insert_columns(
        conn,
        "lots",
        {
            "lot_id": ("uuid", [uuid.UUID(lot.lot_id) for _, lot in new]),
            "customer_id": ("text", [customer_id for customer_id, _ in new]),
            "source": ("text", [lot.source.value for _, lot in new]),
            "points": ("bigint", [lot.points for _, lot in new]),
            "redeemed": ("bigint", [lot.redeemed for _, lot in new]),
            "clawed_back": ("bigint", [lot.clawed_back for _, lot in new]),
            "expired": ("bigint", [lot.expired for _, lot in new]),
            "earned_at": ("timestamptz", [lot.earned_at for _, lot in new]),
            "pending_until": ("timestamptz", [lot.pending_until for _, lot in new]),
            "expires_at": ("timestamptz", [lot.expires_at for _, lot in new]),
            "merchant_id": ("text", [lot.merchant_id for _, lot in new]),
            "reference": ("text", [lot.reference for _, lot in new]),
        },
    )


async def update_lot_counters(conn: AsyncConnection, changed: Sequence[Lot]) -> None:
    """Store the lots' counters as they are now (the caller holds the account locks)."""
    await _update_lot_counters(conn, list(changed))


async def _update_lot_counters(conn: AsyncConnection, changed: list[Lot]) -> None:
    if not changed:
        return
    await conn.execute(
        sa.text(
            "UPDATE lots AS l SET redeemed = v.redeemed, clawed_back = v.clawed_back,"
            " expired = v.expired "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:redeemed AS bigint[]),"
            " CAST(:clawed AS bigint[]), CAST(:expired AS bigint[]))"
            " AS v(lot_id, redeemed, clawed_back, expired) "
            "WHERE l.lot_id = v.lot_id"
        ),
        {
            "ids": [uuid.UUID(lot.lot_id) for lot in changed],
            "redeemed": [lot.redeemed for lot in changed],
            "clawed": [lot.clawed_back for lot in changed],
            "expired": [lot.expired for lot in changed],
        },
    )


async def _insert_ledger(conn: AsyncConnection, changes: Changes) -> None:
    lines = changes.ledger
    if not lines:
        return
    await insert_columns(
        conn,
        "ledger",
        {
            "customer_id": ("text", [line.customer_id for line in lines]),
            "kind": ("text", [line.kind.value for line in lines]),
            "points": ("bigint", [line.points for line in lines]),
            "merchant_id": ("text", [line.merchant_id for line in lines]),
            "reference": ("text", [line.reference for line in lines]),
            "occurred_at": ("timestamptz", [line.occurred_at for line in lines]),
            "reason": ("text", [line.reason for line in lines]),
            "actor": ("text", [line.actor for line in lines]),
            "event_id": ("uuid", [line.event_id for line in lines]),
        },
    )


async def _insert_orders(conn: AsyncConnection, new: list[StoredOrder]) -> None:
    if not new:
        return
    await insert_columns(
        conn,
        "order_earnings",
        {
            "order_id": ("text", [o.order_id for o in new]),
            "customer_id": ("text", [o.customer_id for o in new]),
            "merchant_id": ("text", [o.merchant_id for o in new]),
            "event_id": ("uuid", [o.event_id for o in new]),
            "occurred_at": ("timestamptz", [o.occurred_at for o in new]),
            "currency": ("text", [o.currency for o in new]),
            "amount_minor": ("bigint", [o.earning.amount_minor for o in new]),
            "spend_minor": ("bigint", [o.spend_minor for o in new]),
            "points": ("bigint", [o.earning.points for o in new]),
            "refunded_minor": ("bigint", [o.earning.refunded_minor for o in new]),
            "reversed_points": ("bigint", [o.earning.reversed_points for o in new]),
            "lot_id": (
                "uuid",
                [uuid.UUID(o.earning.lot_id) if o.earning.lot_id else None for o in new],
            ),
            "lines": ("jsonb", [lines_to_json(o.earning.lines) for o in new]),
            "returned": ("jsonb", [returned_to_json(o.earning.returned) for o in new]),
            "settles_at": ("timestamptz", [o.settles_at or o.occurred_at for o in new]),
            "settled_at": ("timestamptz", [o.settled_at for o in new]),
        },
    )


async def insert_columns(
    conn: AsyncConnection, table: str, columns: dict[str, tuple[str, list[Any]]]
) -> None:
    """Many new rows of `table`, given column by column, by one binary COPY in the
    caller's transaction.

    COPY checks constraints and fires triggers as INSERT does; it encodes each value
    once with the connection's codecs, whereas `INSERT ... unnest($1::t[], ...)` has the
    driver inspect every array element (an isinstance against abstract base classes per
    value: 8-15 µs per purchase across lots, ledger and orders, `python -m bench points`).
    Table and column names come from this module, never from input; the types are the
    columns' own (JSON columns take text).
    """
    values = [column for _, column in columns.values()]
    driver = await driver_connection(conn)
    await driver.copy_records_to_table(
        table, records=list(zip(*values, strict=True)), columns=list(columns)
    )


async def _update_orders(conn: AsyncConnection, changed: list[StoredOrder]) -> None:
    if not changed:
        return
    await conn.execute(
        sa.text(
            "UPDATE order_earnings AS o SET refunded_minor = v.refunded,"
            " reversed_points = v.reversed, returned = CAST(v.returned AS jsonb),"
            " settled_at = v.settled_at "
            "FROM unnest(CAST(:ids AS text[]), CAST(:refunded AS bigint[]),"
            " CAST(:reversed AS bigint[]), CAST(:returned AS text[]),"
            " CAST(:settled AS timestamptz[])) AS v(order_id, refunded, reversed, returned,"
            " settled_at) "
            "WHERE o.order_id = v.order_id"
        ),
        {
            "ids": [o.order_id for o in changed],
            "refunded": [o.earning.refunded_minor for o in changed],
            "reversed": [o.earning.reversed_points for o in changed],
            "returned": [returned_to_json(o.earning.returned) for o in changed],
            "settled": [o.settled_at for o in changed],
        },
    )


def _return_row(record: ReturnRecord) -> dict[str, Any]:
    return {
        "return_id": record.return_id,
        "order_id": record.order_id,
        "customer_id": record.customer_id,
        "merchant_id": record.merchant_id,
        "event_id": record.event_id,
        "occurred_at": record.occurred_at,
        "currency": record.currency,
        "refunded_minor": record.refunded_minor,
        "items": [{"sku": i.sku, "quantity": i.quantity} for i in record.items] or None,
        "status": record.status,
        "points_reversed": record.points_reversed,
        "rejection": record.rejection,
        "applied_at": record.applied_at,
    }


async def _insert_returns(conn: AsyncConnection, new: list[ReturnRecord]) -> None:
    if new:
        await conn.execute(sa.insert(order_returns), [_return_row(r) for r in new])


async def _update_returns(conn: AsyncConnection, changed: list[ReturnRecord]) -> None:
    for record in changed:  # rare: a parked return meeting its order
        await conn.execute(
            sa.update(order_returns)
            .where(order_returns.c.return_id == record.return_id)
            .values(
                status=record.status,
                points_reversed=record.points_reversed,
                rejection=record.rejection,
                applied_at=record.applied_at,
            )
        )


async def _add_daily_points(conn: AsyncConnection, changes: Changes) -> None:
    if not changes.daily_points:
        return
    keys = sorted(changes.daily_points)
    await conn.execute(
        sa.text(
            "INSERT INTO daily_earnings (customer_id, day, points) "
            "SELECT * FROM unnest(CAST(:customers AS text[]), CAST(:days AS date[]),"
            " CAST(:points AS bigint[])) "
            "ON CONFLICT (customer_id, day) DO UPDATE"
            " SET points = daily_earnings.points + excluded.points"
        ),
        {
            "customers": [c for c, _ in keys],
            "days": [d for _, d in keys],
            "points": [changes.daily_points[k] for k in keys],
        },
    )
