"""Read side: what a partner app, an admin or a test may ask about the books.

Reads take no locks. A balance is derived from the live lots at the moment asked, so
points whose expiry date has passed never show, whether or not the expiry job has run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.book import ReturnRecord
from services.points.db import accounts, ledger, lots, order_earnings, order_returns, redemptions
from services.points.domain.balances import Balance, MerchantLiability, balance_at
from services.points.domain.invariants import InvariantViolation, RedemptionRecord, check_account
from services.points.domain.ledger import EntryKind, LedgerEntry
from services.points.domain.lots import LotDraw
from services.points.domain.moments import add_months
from services.points.domain.tiers import (
    QualifyingPurchase,
    Tier,
    TierProgress,
    progress_to_next_tier,
    qualifying_activity,
)
from services.points.repository import lot_from_row, order_from_row, return_from_row
from services.points.rules import RuleBook, load_rule_book


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


async def read_account(
    conn: AsyncConnection, customer_id: str, now: datetime, rules: RuleBook | None = None
) -> AccountView | None:
    """Balance (available, pending with dates, expiring soon), tier and progress; None if unknown.

    Pass `rules` (cached by the caller) to save reading the rule versions on every call.
    """
    row = (
        await conn.execute(sa.select(accounts).where(accounts.c.customer_id == customer_id))
    ).first()
    if row is None:
        return None
    live = await conn.execute(
        sa.select(lots).where(lots.c.customer_id == customer_id, lots.c.remaining > 0)
    )
    book = rules if rules is not None else await load_rule_book(conn)
    policy = book.in_force(now).tiers
    purchases = await _qualifying_purchases(
        conn, customer_id, add_months(now, -policy.window_months)
    )
    tier = Tier(row.tier)
    return AccountView(
        customer_id=customer_id,
        balance=balance_at([lot_from_row(r) for r in live], now, row.debt),
        tier=tier,
        lifetime_earned=row.lifetime_earned,
        purchase_count=row.purchase_count,
        first_purchase_at=row.first_purchase_at,
        ledger_balance=row.ledger_balance,
        progress=progress_to_next_tier(tier, qualifying_activity(purchases, now, policy), policy),
    )


async def _qualifying_purchases(
    conn: AsyncConnection, customer_id: str, since: datetime
) -> list[QualifyingPurchase]:
    rows = await conn.execute(
        sa.select(order_earnings).where(
            order_earnings.c.customer_id == customer_id, order_earnings.c.occurred_at > since
        )
    )
    return [order_from_row(r).qualifying() for r in rows]


async def ledger_entries(conn: AsyncConnection, customer_id: str) -> list[LedgerEntry]:
    """Every ledger entry of a customer, in the order written."""
    rows = await conn.execute(
        sa.select(ledger).where(ledger.c.customer_id == customer_id).order_by(ledger.c.id)
    )
    return [_entry(row) for row in rows]


def _entry(row: Any) -> LedgerEntry:
    return LedgerEntry(
        sequence=row.id,
        customer_id=row.customer_id,
        kind=EntryKind(row.kind),
        points=row.points,
        occurred_at=row.occurred_at,
        reference=row.reference,
        merchant_id=row.merchant_id,
        reason=row.reason,
    )


async def account_violations(
    conn: AsyncConnection, customer_id: str
) -> tuple[InvariantViolation, ...]:
    """Every way the customer's books disagree (empty when sound); see domain.invariants."""
    debt = await conn.scalar(
        sa.select(accounts.c.debt).where(accounts.c.customer_id == customer_id)
    )
    every_lot = await conn.execute(sa.select(lots).where(lots.c.customer_id == customer_id))
    stored = await conn.execute(
        sa.select(redemptions).where(redemptions.c.customer_id == customer_id)
    )
    records = [
        RedemptionRecord(
            redemption_id=str(r.redemption_id),
            occurred_at=r.occurred_at,
            points=r.points,
            draws=tuple(LotDraw(d["lot_id"], d["points"]) for d in r.draws),
            cancelled=r.cancelled_at is not None,
        )
        for r in stored
    ]
    return check_account(
        customer_id,
        await ledger_entries(conn, customer_id),
        [lot_from_row(r) for r in every_lot],
        debt or 0,
        records,
    )


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


async def liability_by_merchant(conn: AsyncConnection, now: datetime) -> list[MerchantLiability]:
    """Available and pending points outstanding per merchant (None: programme-wide credits)."""
    rows = await conn.execute(
        sa.select(
            lots.c.merchant_id,
            sa.func.coalesce(sa.func.sum(lots.c.remaining).filter(lots.c.pending_until <= now), 0),
            sa.func.coalesce(sa.func.sum(lots.c.remaining).filter(lots.c.pending_until > now), 0),
        )
        .where(lots.c.remaining > 0, lots.c.expires_at > now)
        .group_by(lots.c.merchant_id)
        .order_by(lots.c.merchant_id.nulls_last())
    )
    return [MerchantLiability(r[0], int(r[1]), int(r[2])) for r in rows]


async def parked_returns(
    conn: AsyncConnection, limit: int = 100, after: str | None = None
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
    return [return_from_row(row) for row in await conn.execute(query)]
