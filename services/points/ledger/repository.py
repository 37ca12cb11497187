"""Lock-free reads of a customer's books for the partner API: the balance (account, live
lots and the tier window's orders in one round trip) and the ledger history page by page."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.points.accounts.repository import ledger_entry
from services.points.db import lines_from_json, returned_from_json
from services.points.domain.ledger import EntryKind, LedgerEntry
from services.points.domain.lots import Lot
from services.points.domain.returns import is_fully_returned
from services.points.domain.tiers import QualifyingPurchase, Tier, qualifying_purchase


@dataclass(frozen=True)
class StoredBooks:
    """An account as read for a balance: the row, its live lots, the tier window's orders."""

    tier: Tier
    debt: int
    ledger_balance: int
    lifetime_earned: int
    purchase_count: int
    first_purchase_at: datetime | None
    lots: list[Lot]
    purchases: list[QualifyingPurchase]


@dataclass(frozen=True)
class LedgerFilter:
    """What a ledger page may be narrowed to: kinds, a time range [since, until), a merchant."""

    kinds: tuple[EntryKind, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    merchant_id: str | None = None


# One round trip: the account row with its live lots and the orders of the tier window as
# arrays of rows (asyncpg decodes anonymous records), instead of three statements.
_BOOKS = (
    "SELECT a.tier, a.debt, a.ledger_balance, a.lifetime_earned, a.purchase_count,"
    " a.first_purchase_at,"
    " ARRAY(SELECT ROW(l.lot_id, l.source, l.points, l.earned_at, l.pending_until, l.expires_at,"
    "  l.merchant_id, l.reference, l.redeemed, l.clawed_back, l.expired)"
    "  FROM lots AS l WHERE l.customer_id = a.customer_id AND l.remaining > 0) AS lots,"
    " ARRAY(SELECT ROW(o.order_id, o.occurred_at, o.amount_minor, o.spend_minor,"
    "  o.refunded_minor, o.settles_at, o.lines::text, o.returned::text)"
    "  FROM order_earnings AS o WHERE o.customer_id = a.customer_id AND o.occurred_at > $2)"
    "  AS orders "
    "FROM accounts AS a WHERE a.customer_id = $1"
)
_LEDGER_COLUMNS = "id, customer_id, kind, points, occurred_at, reference, merchant_id, reason"


class BookReader:
    """Lock-free reads of a customer's books on a bare asyncpg connection (the read pool)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def books(self, customer_id: str, orders_since: datetime) -> StoredBooks | None:
        """The account, its live lots and its orders after `orders_since`; None if unknown."""
        row = await self.conn.fetchrow(_BOOKS, customer_id, orders_since)
        if row is None:
            return None
        return StoredBooks(
            tier=Tier(row["tier"]),
            debt=row["debt"],
            ledger_balance=row["ledger_balance"],
            lifetime_earned=row["lifetime_earned"],
            purchase_count=row["purchase_count"],
            first_purchase_at=row["first_purchase_at"],
            lots=[_lot(*lot) for lot in row["lots"]],
            purchases=[_qualifying(*order) for order in row["orders"]],
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
