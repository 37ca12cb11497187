"""Read side: what a partner app, an admin or a test may ask about the books.

Reads take no locks. A balance is derived from the live lots at the moment asked, so
points whose expiry date has passed never show, whether or not the expiry job has run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.book import ReturnRecord, StoredOrder
from services.points.db import accounts, ledger, lots, order_returns, redemptions
from services.points.domain.balances import Balance, MerchantLiability, balance_at
from services.points.domain.invariants import InvariantViolation, RedemptionRecord, check_account
from services.points.domain.ledger import EntryKind, LedgerEntry
from services.points.domain.lots import Lot, LotDraw
from services.points.domain.moments import add_months
from services.points.domain.returns import OrderEarning
from services.points.domain.tiers import (
    QualifyingPurchase,
    Tier,
    TierProgress,
    progress_to_next_tier,
    qualifying_activity,
)
from services.points.repository import (
    among,
    lines_from_json,
    lot_from_row,
    return_from_row,
    returned_from_json,
)
from services.points.rules import RuleBook, load_rule_book
from shared.db import driver_connection

_T = TypeVar("_T")
_NO_EVENT = uuid.UUID(int=0)


@dataclass(frozen=True)
class AccountView:
    """A customer's account as a partner app shows it."""

    customer_id: str
    balance: Balance
    tier: Tier
    lifetime_earned: int
    purchase_count: int
    first_purchase_at: datetime | None
    ledger_balance: int
    progress: TierProgress


# One round trip: the account row with its live lots and the orders of the tier window as
# arrays of rows (asyncpg decodes anonymous records), instead of three statements.
_ACCOUNT_VIEW = (
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


async def read_account(
    conn: AsyncConnection, customer_id: str, now: datetime, rules: RuleBook | None = None
) -> AccountView | None:
    """Balance (available, pending with dates, expiring soon), tier and progress; None if unknown.

    Pass `rules` (cached by the caller) to save reading the rule versions on every call.
    """
    book = rules if rules is not None else await load_rule_book(conn)
    return await account_view(await driver_connection(conn), customer_id, now, book)


async def account_view(
    conn: asyncpg.Connection, customer_id: str, now: datetime, rules: RuleBook
) -> AccountView | None:
    """`read_account` on a bare asyncpg connection (the partner API's read pool)."""
    policy = rules.in_force(now).tiers
    since = add_months(now, -policy.window_months)
    row = await conn.fetchrow(_ACCOUNT_VIEW, customer_id, since)
    if row is None:
        return None
    tier = Tier(row["tier"])
    purchases = [_qualifying(customer_id, *order) for order in row["orders"]]
    return AccountView(
        customer_id=customer_id,
        balance=balance_at([_lot(*lot) for lot in row["lots"]], now, row["debt"]),
        tier=tier,
        lifetime_earned=row["lifetime_earned"],
        purchase_count=row["purchase_count"],
        first_purchase_at=row["first_purchase_at"],
        ledger_balance=row["ledger_balance"],
        progress=progress_to_next_tier(tier, qualifying_activity(purchases, now, policy), policy),
    )


def _lot(lot_id: uuid.UUID, source: str, *fields: Any) -> Lot:
    return Lot(str(lot_id), EntryKind(source), *fields)


def _qualifying(
    customer_id: str,
    order_id: str,
    occurred_at: datetime,
    amount_minor: int,
    spend_minor: int,
    refunded_minor: int,
    settles_at: datetime,
    lines: str | None,
    returned: str | None,
) -> QualifyingPurchase:
    # Through StoredOrder, so refunds count toward tiers exactly as the consumer counts them.
    earning = OrderEarning(
        order_id,
        0,
        amount_minor,
        refunded_minor,
        lines=lines_from_json(lines),
        returned=returned_from_json(returned),
    )
    stored = StoredOrder(
        earning, customer_id, "", _NO_EVENT, occurred_at, "", spend_minor, settles_at=settles_at
    )
    return stored.qualifying()


async def ledger_entries(conn: AsyncConnection, customer_id: str) -> list[LedgerEntry]:
    """Every ledger entry of a customer, in the order written."""
    rows = await conn.execute(
        sa.select(ledger).where(ledger.c.customer_id == customer_id).order_by(ledger.c.id)
    )
    return [_entry(row) for row in rows]


def _entry(row: Any) -> LedgerEntry:
    return _ledger_entry(
        row.id,
        row.customer_id,
        row.kind,
        row.points,
        row.occurred_at,
        row.reference,
        row.merchant_id,
        row.reason,
    )


async def account_violations(
    conn: AsyncConnection, customer_id: str
) -> tuple[InvariantViolation, ...]:
    """Every way the customer's books disagree (empty when sound); see domain.invariants."""
    return tuple(await violations_of(conn, [customer_id]))


async def customers_out_of_balance(conn: AsyncConnection, limit: int = 1000) -> list[str]:
    """Customers whose ledger balance differs from their lots minus debt (one SQL scan)."""
    rows = await conn.execute(
        sa.text(
            "SELECT a.customer_id FROM accounts AS a LEFT JOIN ("
            " SELECT customer_id, sum(remaining) AS remaining FROM lots GROUP BY customer_id"
            ") AS l USING (customer_id) "
            "WHERE a.ledger_balance <> coalesce(l.remaining, 0) - a.debt "
            "ORDER BY a.customer_id LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [row.customer_id for row in rows]


async def liability_by_merchant(
    conn: AsyncConnection, now: datetime, merchant_id: str | None = None
) -> list[MerchantLiability]:
    """Available and pending points outstanding per merchant (None: programme-wide credits).

    With `merchant_id`, that merchant's row only.
    """
    query = (
        sa.select(
            lots.c.merchant_id,
            sa.func.coalesce(sa.func.sum(lots.c.remaining).filter(lots.c.pending_until <= now), 0),
            sa.func.coalesce(sa.func.sum(lots.c.remaining).filter(lots.c.pending_until > now), 0),
        )
        .where(lots.c.remaining > 0, lots.c.expires_at > now)
        .group_by(lots.c.merchant_id)
        .order_by(lots.c.merchant_id.nulls_last())
    )
    if merchant_id is not None:
        query = query.where(lots.c.merchant_id == merchant_id)
    rows = await conn.execute(query)
    return [MerchantLiability(r[0], int(r[1]), int(r[2])) for r in rows]


async def parked_returns(
    conn: AsyncConnection,
    limit: int = 100,
    after: str | None = None,
    merchant_id: str | None = None,
) -> list[ReturnRecord]:
    """Returns still waiting for their order, or rejected when it came (cursor: return id)."""
    query = (
        sa.select(order_returns)
        .where(order_returns.c.status.in_(("parked", "rejected")))
        .order_by(order_returns.c.return_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(order_returns.c.return_id > after)
    if merchant_id is not None:
        query = query.where(order_returns.c.merchant_id == merchant_id)
    return [return_from_row(row) for row in await conn.execute(query)]


@dataclass(frozen=True)
class LedgerFilter:
    """What a ledger page may be narrowed to: kinds, a time range [since, until), a merchant."""

    kinds: tuple[EntryKind, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    merchant_id: str | None = None


_LEDGER_COLUMNS = "id, customer_id, kind, points, occurred_at, reference, merchant_id, reason"


async def ledger_page(
    conn: asyncpg.Connection,
    customer_id: str,
    wanted: LedgerFilter,
    limit: int,
    before: int | None = None,
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
    return [_ledger_entry(*row) for row in await conn.fetch(sql, *arguments)]


def _ledger_entry(
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


@dataclass(frozen=True)
class AdjustmentRecord:
    """An administrator's correction as kept: who (the API key), when and why."""

    sequence: int
    adjustment_id: str
    customer_id: str
    points: int
    reason: str
    actor: str
    merchant_id: str | None
    occurred_at: datetime
    recorded_at: datetime


async def adjustments(
    conn: AsyncConnection,
    customer_id: str | None,
    limit: int,
    before: int | None = None,
    adjustment_id: str | None = None,
    merchant_id: str | None = None,
) -> list[AdjustmentRecord]:
    """Adjustments, newest first (all customers, or one; all merchants, or one), keyset-paged
    by ledger id."""
    query = (
        sa.select(ledger)
        .where(ledger.c.kind == EntryKind.ADJUSTMENT.value)
        .order_by(ledger.c.id.desc())
        .limit(limit)
    )
    if customer_id is not None:
        query = query.where(ledger.c.customer_id == customer_id)
    if before is not None:
        query = query.where(ledger.c.id < before)
    if adjustment_id is not None:
        query = query.where(ledger.c.reference == adjustment_id)
    if merchant_id is not None:
        query = query.where(ledger.c.merchant_id == merchant_id)
    return [
        AdjustmentRecord(
            sequence=row.id,
            adjustment_id=row.reference,
            customer_id=row.customer_id,
            points=row.points,
            reason=row.reason,
            actor=row.actor,
            merchant_id=row.merchant_id,
            occurred_at=row.occurred_at,
            recorded_at=row.recorded_at,
        )
        for row in await conn.execute(query)
    ]


async def redemption_merchant(conn: AsyncConnection, redemption_id: str) -> str | None:
    """The merchant a redemption was made at (None when there is no such redemption)."""
    try:
        wanted = uuid.UUID(redemption_id)
    except ValueError:
        return None
    merchant: str | None = await conn.scalar(
        sa.select(redemptions.c.merchant_id).where(redemptions.c.redemption_id == wanted)
    )
    return merchant


async def customers_page(conn: AsyncConnection, limit: int, after: str | None) -> list[str]:
    """Customer ids in order, `limit` after `after` (to check the books page by page)."""
    query = sa.select(accounts.c.customer_id).order_by(accounts.c.customer_id).limit(limit)
    if after is not None:
        query = query.where(accounts.c.customer_id > after)
    return list((await conn.execute(query)).scalars())


async def violations_of(
    conn: AsyncConnection, customer_ids: Sequence[str]
) -> list[InvariantViolation]:
    """Every invariant violation of these customers, read in four set-based queries."""
    if not customer_ids:
        return []
    debts = dict(
        (
            await conn.execute(
                sa.select(accounts.c.customer_id, accounts.c.debt).where(
                    among(accounts.c.customer_id, customer_ids)
                )
            )
        ).all()
    )
    entries = _grouped(
        await conn.execute(
            sa.select(ledger).where(among(ledger.c.customer_id, customer_ids)).order_by(ledger.c.id)
        ),
        _entry,
    )
    every_lot = _grouped(
        await conn.execute(sa.select(lots).where(among(lots.c.customer_id, customer_ids))),
        lot_from_row,
    )
    stored = _grouped(
        await conn.execute(
            sa.select(redemptions).where(among(redemptions.c.customer_id, customer_ids))
        ),
        _redemption_record,
    )
    found: list[InvariantViolation] = []
    for customer_id in customer_ids:
        found += check_account(
            customer_id,
            entries.get(customer_id, []),
            every_lot.get(customer_id, []),
            debts.get(customer_id) or 0,
            stored.get(customer_id, []),
        )
    return found


def _grouped(rows: Any, convert: Callable[[Any], _T]) -> dict[str, list[_T]]:
    grouped: dict[str, list[_T]] = {}
    for row in rows:
        grouped.setdefault(row.customer_id, []).append(convert(row))
    return grouped


def _redemption_record(row: Any) -> RedemptionRecord:
    return RedemptionRecord(
        redemption_id=str(row.redemption_id),
        occurred_at=row.occurred_at,
        points=row.points,
        draws=tuple(LotDraw(d["lot_id"], d["points"]) for d in row.draws),
        cancelled=row.cancelled_at is not None,
    )


async def ledger_out_of_step(conn: AsyncConnection, limit: int = 1000) -> list[str]:
    """Customers whose stored balance is not the sum of their ledger entries (one scan)."""
    rows = await conn.execute(
        sa.text(
            "SELECT a.customer_id FROM accounts AS a LEFT JOIN ("
            " SELECT customer_id, sum(points) AS points FROM ledger GROUP BY customer_id"
            ") AS l USING (customer_id) "
            "WHERE a.ledger_balance <> coalesce(l.points, 0) "
            "ORDER BY a.customer_id LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [row.customer_id for row in rows]


async def total_debt(conn: AsyncConnection) -> int:
    """Points all customers owe back after returns of points already spent."""
    return int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(accounts.c.debt), 0))) or 0)
