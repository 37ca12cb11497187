"""The customer's books in storage: accounts, lots and ledger lines, loaded under row locks
and written back in a handful of set-based statements.

Lock protocol (what keeps HTTP redemptions, consumers and jobs correct together): every
writer locks the customer's `accounts` row first (`FOR UPDATE`, customers in id order),
and only then reads or changes the customer's lots. The expiry and review jobs never wait
for an account: they take it with `SKIP LOCKED` and leave busy customers to the next run.
Written values are absolute (counters as they are now in memory), which is safe because
the writer holds the accounts' row locks. Repositories never commit: the unit of work does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.db import accounts, ledger, lots
from services.points.domain.book import Account, Changes
from services.points.domain.ledger import EntryKind, LedgerEntry
from services.points.domain.lots import Lot
from services.points.domain.tiers import Tier
from shared.db import driver_connection

_ENSURE_ACCOUNTS = sa.text(
    "INSERT INTO accounts (customer_id) SELECT unnest(CAST(:ids AS text[])) "
    "ON CONFLICT (customer_id) DO NOTHING"
)
_ACCOUNT_COLUMNS = (
    accounts.c.customer_id,
    accounts.c.tier,
    accounts.c.debt,
    accounts.c.lifetime_earned,
    accounts.c.purchase_count,
    accounts.c.first_purchase_at,
    accounts.c.tier_changed_at,
    accounts.c.next_review_at,
    accounts.c.settled_points,
    accounts.c.settled_purchase_count,
)


def among(column: sa.ColumnElement[Any], values: Iterable[Any]) -> sa.ColumnElement[bool]:
    """`column = ANY(:array)`: one bound array, not one parameter per value.

    A plain IN of 2,000 ids costs SQLAlchemy a compile per batch and PostgreSQL a parse of
    2,000 parameters; the array travels in binary and the statement is cached.
    """
    array = pg.ARRAY(column.type)
    return column == sa.any_(sa.cast(sa.bindparam(None, list(values), type_=array), array))


class AccountRepository:
    """Accounts with their live lots, and the ledger lines and lot counters of a run."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def lock(self, customer_ids: Iterable[str]) -> dict[str, Account]:
        """Open (creating if new) and lock the customers' accounts, with their live lots."""
        ids = sorted(set(customer_ids))
        await self.conn.execute(_ENSURE_ACCOUNTS, {"ids": ids})
        rows = await self.conn.execute(
            sa.select(*_ACCOUNT_COLUMNS)
            .where(among(accounts.c.customer_id, ids))
            .order_by(accounts.c.customer_id)
            .with_for_update()
        )
        found = {row.customer_id: _account(row) for row in rows}
        await self._attach_live_lots(found)
        return found

    async def lock_if_free(self, customer_ids: Iterable[str]) -> dict[str, Account]:
        """Lock the accounts nobody else holds right now (for jobs); skip the busy ones."""
        rows = await self.conn.execute(
            sa.select(*_ACCOUNT_COLUMNS)
            .where(among(accounts.c.customer_id, sorted(set(customer_ids))))
            .order_by(accounts.c.customer_id)
            .with_for_update(skip_locked=True)
        )
        found = {row.customer_id: _account(row) for row in rows}
        await self._attach_live_lots(found)
        return found

    async def _attach_live_lots(self, found: dict[str, Account]) -> None:
        if not found:
            return
        rows = await self.conn.execute(
            sa.select(lots).where(among(lots.c.customer_id, found), lots.c.remaining > 0)
        )
        by_customer: dict[str, list[Lot]] = {}
        for row in rows:
            by_customer.setdefault(row.customer_id, []).append(lot_from_row(row))
        for customer_id, account in found.items():
            account.lots = tuple(by_customer.get(customer_id, ()))

    async def attach_lots(self, account: Account, lot_ids: set[str]) -> None:
        """Add lots that are empty now (not among the live lots), e.g. for a cancellation."""
        missing = lot_ids - {lot.lot_id for lot in account.lots}
        if missing:
            rows = await self.conn.execute(
                sa.select(lots).where(lots.c.lot_id.in_([uuid.UUID(i) for i in missing]))
            )
            account.lots = (*account.lots, *(lot_from_row(r) for r in rows))

    async def save(self, accounts_by_id: dict[str, Account], changes: Changes) -> None:
        """Write back the accounts, lots and ledger lines a run changed (in FK order)."""
        await self._save_accounts([accounts_by_id[c] for c in sorted(changes.accounts)])
        every_lot = {
            lot.lot_id: (a.customer_id, lot) for a in accounts_by_id.values() for lot in a.lots
        }
        await self._insert_lots([every_lot[i] for i in sorted(changes.new_lots)])
        touched = sorted(changes.touched_lots - changes.new_lots)
        await self._update_lot_counters([every_lot[i][1] for i in touched if i in every_lot])
        await self._insert_ledger(changes)

    async def _save_accounts(self, changed: list[Account]) -> None:
        if not changed:
            return
        await self.conn.execute(
            sa.text(
                "UPDATE accounts AS a SET tier = v.tier, debt = v.debt,"
                " lifetime_earned = v.lifetime_earned, purchase_count = v.purchase_count,"
                " first_purchase_at = v.first_purchase_at, tier_changed_at = v.tier_changed_at,"
                " next_review_at = v.next_review_at, settled_points = v.settled_points,"
                " settled_purchase_count = v.settled_count "
                "FROM unnest(CAST(:ids AS text[]), CAST(:tiers AS text[]),"
                " CAST(:debts AS bigint[]),"
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

    async def _insert_lots(self, new: list[tuple[str, Lot]]) -> None:
        if not new:
            return
        await insert_columns(
            self.conn,
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

    async def _update_lot_counters(self, changed: list[Lot]) -> None:
        if not changed:
            return
        await self.conn.execute(
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

    async def _insert_ledger(self, changes: Changes) -> None:
        lines = changes.ledger
        if not lines:
            return
        await insert_columns(
            self.conn,
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

    async def entries(self, customer_id: str) -> list[LedgerEntry]:
        """Every ledger entry of a customer, in the order written."""
        rows = await self.conn.execute(
            sa.select(ledger).where(ledger.c.customer_id == customer_id).order_by(ledger.c.id)
        )
        return [entry_from_row(row) for row in rows]


async def insert_columns(
    conn: AsyncConnection, table: str, columns: dict[str, tuple[str, list[Any]]]
) -> None:
    """Many new rows of `table`, given column by column, by one binary COPY in the
    caller's transaction.

    COPY checks constraints and fires triggers as INSERT does; it encodes each value
    once with the connection's codecs, whereas `INSERT ... unnest($1::t[], ...)` has the
    driver inspect every array element (an isinstance against abstract base classes per
    value: 8-15 µs per purchase across lots, ledger and orders, `python -m bench points`).
    Table and column names come from the repositories, never from input; the types are the
    columns' own (JSON columns take text).
    """
    values = [column for _, column in columns.values()]
    driver = await driver_connection(conn)
    await driver.copy_records_to_table(
        table, records=list(zip(*values, strict=True)), columns=list(columns)
    )


async def claim_due(
    conn: AsyncConnection,
    columns: Sequence[sa.ColumnElement[Any]],
    *,
    due_at: sa.ColumnElement[Any],
    now: datetime,
    batch_size: int,
    also: Sequence[sa.ColumnElement[bool]] = (),
) -> Sequence[sa.Row[Any]]:
    """Lock up to `batch_size` rows due by `now`, earliest first, skipping rows locked
    elsewhere (two job instances never take the same row). Rows come due through a partial
    index on their due column, so a claim costs O(rows due)."""
    return (
        await conn.execute(
            sa.select(*columns)
            .where(*also, due_at <= now)
            .order_by(due_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    ).all()


def _account(row: Any) -> Account:
    return Account(
        customer_id=row.customer_id,
        tier=Tier(row.tier),
        debt=row.debt,
        lifetime_earned=row.lifetime_earned,
        purchase_count=row.purchase_count,
        first_purchase_at=row.first_purchase_at,
        tier_changed_at=row.tier_changed_at,
        next_review_at=row.next_review_at,
        settled_points=row.settled_points,
        settled_purchase_count=row.settled_purchase_count,
    )


def lot_from_row(row: Any) -> Lot:
    return Lot(
        lot_id=str(row.lot_id),
        source=EntryKind(row.source),
        points=row.points,
        earned_at=row.earned_at,
        pending_until=row.pending_until,
        expires_at=row.expires_at,
        merchant_id=row.merchant_id,
        reference=row.reference,
        redeemed=row.redeemed,
        clawed_back=row.clawed_back,
        expired=row.expired,
    )


def entry_from_row(row: Any) -> LedgerEntry:
    return ledger_entry(
        row.id,
        row.customer_id,
        row.kind,
        row.points,
        row.occurred_at,
        row.reference,
        row.merchant_id,
        row.reason,
    )


def ledger_entry(
    sequence: int,
    customer_id: str,
    kind: str,
    points: int,
    occurred_at: datetime,
    reference: str,
    merchant_id: str | None,
    reason: str | None,
) -> LedgerEntry:
    return LedgerEntry(
        sequence=sequence,
        customer_id=customer_id,
        kind=EntryKind(kind),
        points=points,
        occurred_at=occurred_at,
        reference=reference,
        merchant_id=merchant_id,
        reason=reason,
    )
