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
from collections.abc import Collection, Iterable, Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from pydantic_core import TzInfo
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.db import ledger, lots
from services.points.domain.book import Account, Changes, LotTotals
from services.points.domain.ledger import EntryKind, LedgerEntry
from services.points.domain.lots import Lot
from services.points.domain.tiers import Tier
from shared.db import transaction_driver

# The lock path runs on the driver directly (asyncpg, prepared once per connection):
# SQLAlchemy's row objects and parameter handling cost more than the rows themselves.
# New customers are told apart from the others by an anti-join before the insert: each id
# the INSERT itself sees becomes a whole row (defaults, CHECK constraints) before ON
# CONFLICT finds its account, dearer than one index probe.
# 8,000 ids (6,600 distinct, most with an account, 19,000 accounts; min / median of 12,
# alternated): 2.4 / 3.4 µs per purchase with ON CONFLICT alone, 1.6 / 1.8 with the
# anti-join first. ON CONFLICT stays for a customer another transaction inserts meanwhile.
_ENSURE_ACCOUNTS = (
    "INSERT INTO accounts (customer_id) SELECT i FROM unnest($1::text[]) AS i "
    "WHERE NOT EXISTS (SELECT 1 FROM accounts AS a WHERE a.customer_id = i) "
    "ON CONFLICT (customer_id) DO NOTHING"
)
_SELECT_ACCOUNTS = (
    "SELECT customer_id, tier, debt, lifetime_earned, purchase_count, first_purchase_at,"
    " tier_changed_at, next_review_at, settled_points, settled_purchase_count "
    "FROM accounts WHERE customer_id = ANY($1::text[]) ORDER BY customer_id "
)
_LOCK_ACCOUNTS = _SELECT_ACCOUNTS + "FOR UPDATE"
_LOCK_FREE_ACCOUNTS = _SELECT_ACCOUNTS + "FOR UPDATE SKIP LOCKED"
# Columns in the order of `restored_lot`; the customer first, to group them.
_LIVE_LOTS = (
    "SELECT customer_id, lot_id::text, source, points, earned_at, pending_until, expires_at,"
    " merchant_id, reference, redeemed, clawed_back, expired "
    "FROM lots WHERE customer_id = ANY($1::text[]) AND remaining > 0"
)
# What `available_and_pending` sums over the same lots at $2, in the same terms: a lot
# counts while `expires_at > $2`, for its `remaining` when positive, as pending while
# `pending_until > $2`, else as available.
_LIVE_TOTALS = (
    "SELECT customer_id,"
    " coalesce(sum(remaining) FILTER (WHERE pending_until <= $2), 0)::bigint,"
    " coalesce(sum(remaining) FILTER (WHERE pending_until > $2), 0)::bigint "
    "FROM lots WHERE customer_id = ANY($1::text[]) AND remaining > 0 AND expires_at > $2 "
    "GROUP BY customer_id"
)
_SOURCES = {kind.value: kind for kind in EntryKind}
# Absolute values, safe because the writer holds the rows' locks (see the module).
_SAVE_ACCOUNTS = (
    "UPDATE accounts AS a SET tier = v.tier, debt = v.debt,"
    " lifetime_earned = v.lifetime_earned, purchase_count = v.purchase_count,"
    " first_purchase_at = v.first_purchase_at, tier_changed_at = v.tier_changed_at,"
    " next_review_at = v.next_review_at, settled_points = v.settled_points,"
    " settled_purchase_count = v.settled_purchase_count "
    "FROM json_to_recordset($1::json) AS v(customer_id text, tier text, debt bigint,"
    " lifetime_earned bigint, purchase_count integer, first_purchase_at timestamptz,"
    " tier_changed_at timestamptz, next_review_at timestamptz, settled_points bigint,"
    " settled_purchase_count integer) "
    "WHERE a.customer_id = v.customer_id"
)

# Read by the ledger's statement trigger (migration points_0007), local to the transaction.
_STAGE_ACCOUNTS = "SELECT set_config('points.account_saves', $1, true)"


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
        found = await self.lock_rows(customer_ids)
        await self._attach_live_lots(found)
        return found

    async def lock_rows(self, customer_ids: Iterable[str]) -> dict[str, Account]:
        """`lock` without the lots: the caller attaches each account's live lots
        (`attach_live_lots`) or, when it draws on none, their totals (`attach_live_totals`)."""
        ids = sorted(set(customer_ids))
        driver = await transaction_driver(self.conn)
        await driver.execute(_ENSURE_ACCOUNTS, ids)
        return {row[0]: _account(row) for row in await driver.fetch(_LOCK_ACCOUNTS, ids)}

    async def attach_live_lots(self, accounts: Iterable[Account]) -> None:
        """The live lots of accounts locked by `lock_rows`."""
        await self._attach_live_lots({account.customer_id: account for account in accounts})

    async def attach_live_totals(self, accounts: Iterable[Account], at: datetime) -> None:
        """Instead of their live lots, what those lots add to a balance at `at`
        (`Account.unloaded_lots`), for accounts locked by `lock_rows` that nothing will draw
        on: one row per customer instead of one restored `Lot` per live lot."""
        by_id = {account.customer_id: account for account in accounts}
        if not by_id:
            return
        driver = await transaction_driver(self.conn)
        totals = {row[0]: row for row in await driver.fetch(_LIVE_TOTALS, list(by_id), at)}
        for customer_id, account in by_id.items():
            row = totals.get(customer_id)
            available, pending = (row[1], row[2]) if row is not None else (0, 0)
            account.unloaded_lots = LotTotals(at, available, pending)

    async def lock_if_free(self, customer_ids: Iterable[str]) -> dict[str, Account]:
        """Lock the accounts nobody else holds right now (for jobs); skip the busy ones."""
        driver = await transaction_driver(self.conn)
        rows = await driver.fetch(_LOCK_FREE_ACCOUNTS, sorted(set(customer_ids)))
        found = {row[0]: _account(row) for row in rows}
        await self._attach_live_lots(found)
        return found

    async def _attach_live_lots(self, found: dict[str, Account]) -> None:
        """Each account's live lots, read after its row lock (a new statement, so a new
        snapshot: what a writer committed before we got the lock is seen).

        The hot path of every purchase: at 10 live lots per account this was half the
        accrual's reading time (`python -m bench points --events 200000`). So one raw
        statement returning the lot id as text, and lots restored from their columns
        without re-running the constructor's checks (`restored_lot`).
        """
        if not found:
            return
        driver = await transaction_driver(self.conn)
        by_customer: dict[str, list[Lot]] = {}
        for row in await driver.fetch(_LIVE_LOTS, list(found)):
            lots_of = by_customer.get(row[0])
            if lots_of is None:
                lots_of = by_customer[row[0]] = []
            lots_of.append(restored_lot(row))
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
        """Write back the accounts, lots and ledger lines a run changed (in FK order).

        With ledger lines to insert, the accounts are only staged here and the ledger's
        trigger writes them with their `ledger_balance`: one new version of each row
        instead of two (migration points_0007)."""
        await self._save_accounts(
            [accounts_by_id[c] for c in sorted(changes.accounts)], staged=bool(changes.ledger)
        )
        if changes.new_lots or changes.touched_lots:  # none when early writes took them all
            every_lot = {
                lot.lot_id: (a.customer_id, lot) for a in accounts_by_id.values() for lot in a.lots
            }
            await self._insert_lots([every_lot[i] for i in sorted(changes.new_lots)])
            touched = sorted(changes.touched_lots - changes.new_lots)
            await self._update_lot_counters([every_lot[i][1] for i in touched if i in every_lot])
        await self._insert_ledger(changes)

    async def _save_accounts(self, changed: list[Account], *, staged: bool = False) -> None:
        """The accounts' values as they are now in memory, as one JSON document: written
        at once, or `staged` for the ledger trigger of this transaction's next ledger
        insert, which must follow in the same run (it writes them, then clears the stage).

        Ten bound arrays of a batch's accounts cost the driver an isinstance check against
        abstract base classes per element (3.3 µs per purchase, `python -m bench points`);
        orjson writes the document in C and PostgreSQL reads it back by column type.
        """
        if not changed:
            return
        document = orjson.dumps(
            [
                {
                    "customer_id": a.customer_id,
                    "tier": a.tier.value,
                    "debt": a.debt,
                    "lifetime_earned": a.lifetime_earned,
                    "purchase_count": a.purchase_count,
                    "first_purchase_at": a.first_purchase_at,
                    "tier_changed_at": a.tier_changed_at,
                    "next_review_at": a.next_review_at,
                    "settled_points": a.settled_points,
                    "settled_purchase_count": a.settled_purchase_count,
                }
                for a in changed
            ]
        ).decode()
        driver = await transaction_driver(self.conn)
        await driver.execute(_STAGE_ACCOUNTS if staged else _SAVE_ACCOUNTS, document)

    async def insert_lots(self, new: list[tuple[str, Lot]]) -> None:
        """New lots (customer, lot) written ahead of the run's save (`accrual.EarlyWrites`);
        the save must then leave them out of `Changes.new_lots`."""
        await self._insert_lots(new)

    async def _insert_lots(self, new: list[tuple[str, Lot]]) -> None:
        if not new:
            return
        await insert_records(
            self.conn,
            "lots",
            _LOT_COLUMNS,
            [_lot_record(c, lot) for c, lot in new],
            moments=_LOT_MOMENTS,
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
        await insert_records(
            self.conn,
            "ledger",
            _LEDGER_COLUMNS,
            [
                (
                    line.customer_id,
                    line.kind.value,
                    line.points,
                    line.merchant_id,
                    line.reference,
                    wire_moment(line.occurred_at),
                    line.reason,
                    line.actor,
                    line.event_id,
                )
                for line in lines
            ],
            moments=_LEDGER_MOMENTS,
        )

    async def entries(self, customer_id: str) -> list[LedgerEntry]:
        """Every ledger entry of a customer, in the order written."""
        rows = await self.conn.execute(
            sa.select(ledger).where(ledger.c.customer_id == customer_id).order_by(ledger.c.id)
        )
        return [entry_from_row(row) for row in rows]


async def insert_records(
    conn: AsyncConnection,
    table: str,
    columns: Sequence[str],
    records: list[tuple[Any, ...]],
    *,
    moments: Collection[str] = (),
) -> None:
    """Many new rows of `table` (each a tuple in the order of `columns`) by one binary COPY
    in the caller's transaction.

    COPY checks constraints and fires triggers as INSERT does; it encodes each value
    once with the connection's codecs, whereas `INSERT ... unnest($1::t[], ...)` has the
    driver inspect every array element (an isinstance against abstract base classes per
    value: 8-15 µs per purchase across lots, ledger and orders, `python -m bench points`).
    Records are built row by row (one tuple per row, not a list per column zipped
    afterwards) and UUIDs travel as their text, which the driver's codec parses in C
    (`uuid.UUID(text)` cost ~1 µs each). Table and column names come from the
    repositories, never from input; the values are of the columns' own types (JSON
    columns take text), except the `moments` columns (`timestamptz`), whose values are
    already `wire_moment`s (or None).

    Why `moments`: binary `timestamptz` is an int8 of microseconds since 2000-01-01 UTC,
    and the driver's codec gets there from an aware datetime by datetime arithmetic in
    Python objects (an infinity comparison, `astimezone`, a subtraction). A purchase
    copies six moments (lots 3, order 2, ledger 1); sent as the int8 the server reads
    anyway they cost the client ~0.4 µs less each (3.2 vs 2.0 µs per lot row, moments
    converted by `wire_moment` included, 4,000-row COPYs), and the server stores the same
    `timestamptz` through the same receive function (range checked). The driver has no
    public way to encode one column with another type's codec, so the COPY is started
    through its protocol with a row description that says int8 for those columns.
    """
    driver = await transaction_driver(conn)
    if not moments or not _WIRE_MOMENTS:
        if moments:
            records = [_with_datetimes(r, columns, moments) for r in records]
        await driver.copy_records_to_table(table, records=records, columns=list(columns))
        return
    names = ", ".join(f'"{c}"' for c in columns)
    shape = ", ".join("0::int8" if c in moments else f'"{c}"' for c in columns)
    # Names from the repositories (see above); prepared once per connection, never run.
    intro_sql = f'SELECT {shape} FROM "{table}" LIMIT 1'  # noqa: S608
    intro = await driver._prepare(intro_sql, use_cache=True)
    copy = f'COPY "{table}" ({names}) FROM STDIN (FORMAT binary)'
    await driver._protocol.copy_in(copy, None, None, records, intro._state, None)


_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_PG_EPOCH_DAY = _PG_EPOCH.toordinal()
_MICROSECOND = timedelta(microseconds=1)
# Zones whose offset is the same at every instant: the contracts' (pydantic's TzInfo) and
# the standard library's fixed offsets. A ZoneInfo's offset changes with the date.
_FIXED_ZONES = (type(UTC), TzInfo)
_FIXED_OFFSETS: dict[tzinfo | None, int] = {}  # zone -> its offset in microseconds


def wire_moment(moment: datetime) -> int:
    """An aware moment as binary `timestamptz` carries it: microseconds since 2000-01-01
    UTC, exactly (integer arithmetic; a naive datetime raises TypeError).

    In a fixed-offset zone, from the moment's own fields and the zone's offset, looked up
    once per zone: 0.41 against 0.69 µs for the datetime subtraction (which asks the zone
    for its offset and builds a timedelta every time), five times per earning purchase.
    """
    zone = moment.tzinfo
    offset = _FIXED_OFFSETS.get(zone)
    if offset is None:
        if type(zone) not in _FIXED_ZONES:
            return (moment - _PG_EPOCH) // _MICROSECOND  # a ZoneInfo, or naive: TypeError
        offset = _FIXED_OFFSETS[zone] = (moment.replace(tzinfo=UTC) - moment) // _MICROSECOND
    seconds = (moment.toordinal() - _PG_EPOCH_DAY) * 86400
    seconds += moment.hour * 3600 + moment.minute * 60 + moment.second
    return seconds * 1_000_000 + moment.microsecond - offset


def _with_datetimes(
    record: tuple[Any, ...], columns: Sequence[str], moments: Collection[str]
) -> tuple[Any, ...]:
    """A record's wire moments back as datetimes, for the driver's own codec."""
    return tuple(
        _PG_EPOCH + v * _MICROSECOND if c in moments and v is not None else v
        for c, v in zip(columns, record, strict=True)
    )


# The driver internals the moments' COPY starts through (those `copy_records_to_table`
# uses itself, asyncpg 0.29-0.32); without them, the public way.
_WIRE_MOMENTS = hasattr(asyncpg.Connection, "_prepare") and hasattr(
    asyncpg.protocol.Protocol, "copy_in"
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


def _account(row: Sequence[Any]) -> Account:
    """An account from a `_SELECT_ACCOUNTS` row."""
    return Account(
        customer_id=row[0],
        tier=_TIERS[row[1]],
        debt=row[2],
        lifetime_earned=row[3],
        purchase_count=row[4],
        first_purchase_at=row[5],
        tier_changed_at=row[6],
        next_review_at=row[7],
        settled_points=row[8],
        settled_purchase_count=row[9],
    )


_TIERS = {tier.value: tier for tier in Tier}


def restored_lot(row: Sequence[Any]) -> Lot:
    """A live lot from a `_LIVE_LOTS` row, restored the way pickle restores a slotted
    dataclass: its slots set, its constructor's checks not run again.

    The checks (aware moments, a source that creates lots) are what the columns already
    guarantee: `timestamptz` comes back aware and `source` has its CHECK. Building a
    frozen dataclass through its constructor costs ~4 µs per lot, and a purchase loads
    every live lot of its customer; a lot changed afterwards (`dataclasses.replace`)
    goes through the constructor as always.
    """
    if not _LOT_RESTORABLE:
        return Lot(row[1], _SOURCES[row[2]], *row[3:])
    lot = _new(Lot)
    for slot, value in zip(_LOT_SLOTS, row[1:], strict=True):
        slot.__set__(lot, value)
    _SOURCE_SLOT.__set__(lot, _SOURCES[row[2]])
    return lot


_new = object.__new__
# The row's columns after the customer, in the order of Lot's fields: restoring sets each
# slot through its descriptor (a frozen dataclass refuses setattr). A Lot that changes
# shape is built by its constructor instead, which fails loudly on a field it lacks.
_RESTORED_FIELDS = (
    "lot_id",
    "source",
    "points",
    "earned_at",
    "pending_until",
    "expires_at",
    "merchant_id",
    "reference",
    "redeemed",
    "clawed_back",
    "expired",
)
_LOT_RESTORABLE = getattr(Lot, "__slots__", None) == _RESTORED_FIELDS and (
    tuple(f.name for f in fields(Lot)) == _RESTORED_FIELDS
)
_SLOTS: dict[str, Any] = dict(vars(Lot))
_LOT_SLOTS = tuple(_SLOTS[name] for name in _RESTORED_FIELDS) if _LOT_RESTORABLE else ()
_SOURCE_SLOT: Any = _SLOTS.get("source")


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


_LOT_COLUMNS = (
    "lot_id",
    "customer_id",
    "source",
    "points",
    "redeemed",
    "clawed_back",
    "expired",
    "earned_at",
    "pending_until",
    "expires_at",
    "merchant_id",
    "reference",
)
_LOT_MOMENTS = frozenset({"earned_at", "pending_until", "expires_at"})


def _lot_record(customer_id: str, lot: Lot) -> tuple[Any, ...]:
    """A new lot in the order of `_LOT_COLUMNS` (moments as `wire_moment`s)."""
    return (
        lot.lot_id,
        customer_id,
        lot.source.value,
        lot.points,
        lot.redeemed,
        lot.clawed_back,
        lot.expired,
        wire_moment(lot.earned_at),
        wire_moment(lot.pending_until),
        wire_moment(lot.expires_at),
        lot.merchant_id,
        lot.reference,
    )


_LEDGER_COLUMNS = (
    "customer_id",
    "kind",
    "points",
    "merchant_id",
    "reference",
    "occurred_at",
    "reason",
    "actor",
    "event_id",
)
_LEDGER_MOMENTS = frozenset({"occurred_at"})


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
