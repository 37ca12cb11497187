"""Loading the books under row locks and writing a run's changes back.

Lock protocol (what keeps HTTP redemptions, consumers and jobs correct together): every
writer locks the customer's `accounts` row first (`FOR UPDATE`, customers in id order),
and only then reads or changes the customer's lots. The expiry and review jobs never wait
for an account: they take it with `SKIP LOCKED` and leave busy customers to the next run.
Repositories never commit; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from fractions import Fraction
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.book import Account, ReturnRecord, StoredOrder
from services.points.db import accounts, ledger, lots, order_earnings, order_returns
from services.points.domain.ledger import EntryKind
from services.points.domain.lots import Lot
from services.points.domain.returns import EarningLine, OrderEarning, ReturnedLine
from services.points.domain.tiers import Tier

_ENSURE_ACCOUNTS = sa.text(
    "INSERT INTO accounts (customer_id) SELECT unnest(CAST(:ids AS text[])) "
    "ON CONFLICT (customer_id) DO NOTHING"
)


def among(column: sa.ColumnElement[Any], values: Iterable[Any]) -> sa.ColumnElement[bool]:
    """`column = ANY(:array)`: one bound array, not one parameter per value.

    A plain IN of 2,000 ids costs SQLAlchemy a compile per batch and PostgreSQL a parse of
    2,000 parameters; the array travels in binary and the statement is cached.
    """
    array = pg.ARRAY(column.type)
    return column == sa.any_(sa.cast(sa.bindparam(None, list(values), type_=array), array))


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


async def lock_accounts(conn: AsyncConnection, customer_ids: Iterable[str]) -> dict[str, Account]:
    """Open (creating if new) and lock the customers' accounts, with their live lots."""
    ids = sorted(set(customer_ids))
    await conn.execute(_ENSURE_ACCOUNTS, {"ids": ids})
    rows = await conn.execute(
        sa.select(*_ACCOUNT_COLUMNS)
        .where(among(accounts.c.customer_id, ids))
        .order_by(accounts.c.customer_id)
        .with_for_update()
    )
    found = {row.customer_id: _account(row) for row in rows}
    await _attach_live_lots(conn, found)
    return found


async def lock_accounts_if_free(
    conn: AsyncConnection, customer_ids: Iterable[str]
) -> dict[str, Account]:
    """Lock the accounts nobody else holds right now (for jobs); skip the busy ones."""
    rows = await conn.execute(
        sa.select(*_ACCOUNT_COLUMNS)
        .where(among(accounts.c.customer_id, sorted(set(customer_ids))))
        .order_by(accounts.c.customer_id)
        .with_for_update(skip_locked=True)
    )
    found = {row.customer_id: _account(row) for row in rows}
    await _attach_live_lots(conn, found)
    return found


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


async def _attach_live_lots(conn: AsyncConnection, found: dict[str, Account]) -> None:
    if not found:
        return
    rows = await conn.execute(
        sa.select(lots).where(among(lots.c.customer_id, found), lots.c.remaining > 0)
    )
    by_customer: dict[str, list[Lot]] = {}
    for row in rows:
        by_customer.setdefault(row.customer_id, []).append(lot_from_row(row))
    for customer_id, account in found.items():
        account.lots = tuple(by_customer.get(customer_id, ()))


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


async def load_orders(
    conn: AsyncConnection,
    accounts_by_id: dict[str, Account],
    order_ids: Sequence[str] = (),
    window_since: datetime | None = None,
) -> dict[str, StoredOrder]:
    """Orders named by id (any customer) and, for tiers, the customers' orders since a moment.

    Orders of a loaded account are also attached to it.
    """
    condition = among(order_earnings.c.order_id, order_ids)
    if window_since is not None:
        in_window = sa.and_(
            among(order_earnings.c.customer_id, accounts_by_id),
            order_earnings.c.occurred_at > window_since,
        )
        condition = sa.or_(condition, in_window)
    rows = await conn.execute(sa.select(order_earnings).where(condition))
    found = {row.order_id: order_from_row(row) for row in rows}
    for order in found.values():
        account = accounts_by_id.get(order.customer_id)
        if account is not None:
            account.orders[order.order_id] = order
    return found


def order_from_row(row: Any) -> StoredOrder:
    return StoredOrder(
        earning=OrderEarning(
            order_id=row.order_id,
            points=row.points,
            amount_minor=row.amount_minor,
            refunded_minor=row.refunded_minor,
            reversed_points=row.reversed_points,
            lot_id=str(row.lot_id) if row.lot_id else None,
            lines=lines_from_json(row.lines),
            returned=returned_from_json(row.returned),
        ),
        customer_id=row.customer_id,
        merchant_id=row.merchant_id,
        event_id=row.event_id,
        occurred_at=row.occurred_at,
        currency=row.currency,
        spend_minor=row.spend_minor,
        settles_at=row.settles_at,
        settled_at=row.settled_at,
    )


def _json(value: Any) -> Any:
    # The read pool's bare asyncpg connection hands JSONB over as text.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def lines_to_json(lines: Sequence[EarningLine]) -> str | None:
    """Receipt lines as stored (weights as exact fractions in text); None when unlined."""
    if not lines:
        return None
    return orjson.dumps(
        [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price_minor,
                "weight": str(line.weight),
            }
            for line in lines
        ]
    ).decode()


def lines_from_json(value: Any) -> tuple[EarningLine, ...]:
    raw = _json(value) or ()
    return tuple(
        EarningLine(
            line["sku"], line["quantity"], line["unit_price_minor"], Fraction(line["weight"])
        )
        for line in raw
    )


def returned_to_json(returned: Sequence[Fraction]) -> str | None:
    """Returned value per line as exact fractions in text; None when nothing came back."""
    return orjson.dumps([str(r) for r in returned]).decode() if returned else None


def returned_from_json(value: Any) -> tuple[Fraction, ...]:
    return tuple(Fraction(r) for r in (_json(value) or ()))


def items_from_json(value: Any) -> tuple[ReturnedLine, ...]:
    return tuple(ReturnedLine(i["sku"], i["quantity"]) for i in (_json(value) or ()))


async def load_returns(
    conn: AsyncConnection, return_ids: Sequence[str] = (), parked_for: Sequence[str] = ()
) -> dict[str, ReturnRecord]:
    """Returns named by id, and the parked returns waiting for the given orders."""
    condition = sa.or_(
        among(order_returns.c.return_id, return_ids),
        sa.and_(among(order_returns.c.order_id, parked_for), order_returns.c.status == "parked"),
    )
    rows = await conn.execute(sa.select(order_returns).where(condition))
    return {row.return_id: return_from_row(row) for row in rows}


def return_from_row(row: Any) -> ReturnRecord:
    return ReturnRecord(
        return_id=row.return_id,
        order_id=row.order_id,
        customer_id=row.customer_id,
        merchant_id=row.merchant_id,
        event_id=row.event_id,
        occurred_at=row.occurred_at,
        currency=row.currency,
        refunded_minor=row.refunded_minor,
        items=items_from_json(row.items),
        status=row.status,
        points_reversed=row.points_reversed,
        rejection=row.rejection,
        applied_at=row.applied_at,
    )


async def load_daily_points(
    conn: AsyncConnection, keys: Iterable[tuple[str, date]]
) -> dict[tuple[str, date], int]:
    """Points already accrued per (customer, programme day), for the daily cap."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await conn.execute(
        sa.text(
            "SELECT d.customer_id, d.day, d.points FROM daily_earnings AS d "
            "JOIN unnest(CAST(:customers AS text[]), CAST(:days AS date[])) AS k(customer_id, day)"
            " USING (customer_id, day)"
        ),
        {"customers": [c for c, _ in wanted], "days": [d for _, d in wanted]},
    )
    return {(row.customer_id, row.day): row.points for row in rows}


async def load_credits(conn: AsyncConnection, credit_ids: Sequence[str]) -> dict[str, Any]:
    """Credits already applied, by credit id (customer and points, to tell replays apart)."""
    rows = await conn.execute(
        sa.select(ledger.c.reference, ledger.c.customer_id, ledger.c.points).where(
            ledger.c.kind == EntryKind.CREDIT.value, among(ledger.c.reference, credit_ids)
        )
    )
    return {row.reference: (row.customer_id, row.points) for row in rows}
