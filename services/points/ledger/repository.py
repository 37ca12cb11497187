"""Lock-free reads of a customer's books for the partner API: the balance (account, live
lots and the tier window's orders in one round trip, the common ones summed in SQL) and
the ledger history page by page."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.points.accounts.repository import ledger_entry
from services.points.db import lines_from_json, returned_from_json
from services.points.domain.ledger import EntryKind, LedgerEntry
from services.points.domain.lots import Lot
from services.points.domain.returns import is_fully_returned
from services.points.domain.tiers import (
    QualifyingActivity,
    QualifyingPurchase,
    Tier,
    qualifying_purchase,
)


@dataclass(frozen=True)
class StoredBooks:
    """An account as read for a balance at one moment: the row; its live lots, the
    *quiet* ones summed; the tier window's orders, the *plain* ones counted and summed.

    A quiet lot is available and expires after the expiring-soon window: all it does to the
    balance is add its remaining points to `available`. A plain order occurred in the
    window, has settled and nothing of it was refunded or returned (its amount is not 0):
    it counts as one qualifying purchase with its whole spend. Everything else is loaded
    whole, for the domain's own rules (`balance_at`, `qualifying_activity`).
    """

    tier: Tier
    debt: int
    ledger_balance: int
    lifetime_earned: int
    purchase_count: int
    first_purchase_at: datetime | None
    quiet_points: int
    lots: list[Lot]  # every other live lot
    plain: QualifyingActivity
    purchases: list[QualifyingPurchase]  # every other order of the window


@dataclass(frozen=True)
class LedgerFilter:
    """What a ledger page may be narrowed to: kinds, a time range [since, until), a merchant."""

    kinds: tuple[EntryKind, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    merchant_id: str | None = None


# One round trip: the account row, the sum of its quiet lots and the count and spend of its
# plain orders (see `StoredBooks`), and its other live lots and window orders as arrays of
# rows (asyncpg decodes anonymous records; NULL when there are none). $1 customer, $2 the
# tier window's start, $3 now, $4 the end of the expiring-soon window. Most of a customer's
# history is quiet lots and plain orders: summed here, they cost the read no decoding and
# no objects (decoding them all was most of the request's CPU, and it grew with the
# customer's history). One pass over the customer's live lots and one over the window's
# orders, each split by FILTER.
_QUIET_LOT = "l.pending_until <= $3 AND l.expires_at > $4"
_PLAIN_ORDER = (
    "o.occurred_at <= $3 AND COALESCE(o.settles_at, o.occurred_at) <= $3"
    " AND o.refunded_minor = 0 AND o.returned IS NULL AND o.amount_minor > 0"
)
# Only the two constant fragments above are interpolated; every value is a bound argument.
_BOOKS = (
    "SELECT a.tier, a.debt, a.ledger_balance, a.lifetime_earned, a.purchase_count,"  # noqa: S608
    " a.first_purchase_at, lot_sums.quiet, lot_sums.lots,"
    " order_sums.purchases, order_sums.spend, order_sums.orders "
    "FROM accounts AS a,"
    f" LATERAL (SELECT COALESCE(SUM(l.remaining) FILTER (WHERE {_QUIET_LOT}), 0)::bigint"
    "  AS quiet,"
    "  ARRAY_AGG(ROW(l.lot_id, l.source, l.points, l.earned_at, l.pending_until, l.expires_at,"
    "  l.merchant_id, l.reference, l.redeemed, l.clawed_back, l.expired))"
    f"  FILTER (WHERE l.expires_at > $3 AND NOT ({_QUIET_LOT})) AS lots"
    "  FROM lots AS l WHERE l.customer_id = a.customer_id AND l.remaining > 0) AS lot_sums,"
    f" LATERAL (SELECT COUNT(*) FILTER (WHERE {_PLAIN_ORDER}) AS purchases,"
    f"  COALESCE(SUM(o.spend_minor) FILTER (WHERE {_PLAIN_ORDER}), 0)::bigint AS spend,"
    "  ARRAY_AGG(ROW(o.order_id, o.occurred_at, o.amount_minor, o.spend_minor,"
    "  o.refunded_minor, o.settles_at, o.lines::text, o.returned::text))"
    f"  FILTER (WHERE NOT ({_PLAIN_ORDER})) AS orders"
    "  FROM order_earnings AS o WHERE o.customer_id = a.customer_id AND o.occurred_at > $2)"
    "  AS order_sums "
    "WHERE a.customer_id = $1"
)
_LEDGER_COLUMNS = "id, customer_id, kind, points, occurred_at, reference, merchant_id, reason"


class BookReader:
    """Lock-free reads of a customer's books on a bare asyncpg connection (the read pool)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def books(
        self, customer_id: str, now: datetime, orders_since: datetime, expiring_within: timedelta
    ) -> StoredBooks | None:
        """The account, its live lots at `now` and its orders after `orders_since`, as
        `StoredBooks` explains; None if unknown."""
        row = await self.conn.fetchrow(
            _BOOKS, customer_id, orders_since, now, now + expiring_within
        )
        if row is None:
            return None
        return StoredBooks(
            tier=Tier(row["tier"]),
            debt=row["debt"],
            ledger_balance=row["ledger_balance"],
            lifetime_earned=row["lifetime_earned"],
            purchase_count=row["purchase_count"],
            first_purchase_at=row["first_purchase_at"],
            quiet_points=row["quiet"],
            lots=[_lot(*lot) for lot in row["lots"] or ()],
            plain=QualifyingActivity(row["purchases"], row["spend"]),
            purchases=[_qualifying(*order) for order in row["orders"] or ()],
        )

    async def page(
        self, customer_id: str, wanted: LedgerFilter, limit: int, before: int | None = None
    ) -> list[LedgerEntry]:
        """Newest entries first, at most `limit`, older than entry `before` (keyset cursor).

        Only the conditions asked for are written into the statement, so each combination
        gets its own plan (an index range on (customer_id, id), never a generic plan that
        scans the customer's whole history for a deep page).
        """
        arguments: list[Any] = [customer_id]

        def bound(value: Any) -> str:
            arguments.append(value)
            return f"${len(arguments)}"

        conditions = ["customer_id = $1"]
        if before is not None:
            conditions.append(f"id < {bound(before)}")
        if wanted.kinds:
            conditions.append(f"kind = ANY({bound([kind.value for kind in wanted.kinds])}::text[])")
        if wanted.since is not None:
            conditions.append(f"occurred_at >= {bound(wanted.since)}")
        if wanted.until is not None:
            conditions.append(f"occurred_at < {bound(wanted.until)}")
        if wanted.merchant_id is not None:
            conditions.append(f"merchant_id = {bound(wanted.merchant_id)}")
        sql = (  # only placeholders are interpolated; every value is a bound argument
            f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE {' AND '.join(conditions)}"  # noqa: S608
            f" ORDER BY id DESC LIMIT {bound(limit)}"
        )
        return [ledger_entry(*row) for row in await self.conn.fetch(sql, *arguments)]


def _lot(lot_id: uuid.UUID, source: str, *fields: Any) -> Lot:
    return Lot(str(lot_id), EntryKind(source), *fields)


def _qualifying(
    order_id: str,
    occurred_at: datetime,
    amount_minor: int,
    spend_minor: int,
    refunded_minor: int,
    settles_at: datetime,
    lines: str | None,
    returned: str | None,
) -> QualifyingPurchase:
    # The same rule the consumer applies to a loaded order, from the columns it reads. An
    # order nothing was refunded on is never fully returned, whatever its lines; most orders
    # of a balance read are such, and decoding their lines was a tenth of the read's CPU.
    fully_returned = (refunded_minor > 0 or bool(returned)) and is_fully_returned(
        amount_minor, refunded_minor, lines_from_json(lines), returned_from_json(returned)
    )
    return qualifying_purchase(
        order_id,
        occurred_at,
        spend_minor,
        amount_minor,
        refunded_minor,
        settles_at=settles_at,
        fully_returned=fully_returned,
    )
