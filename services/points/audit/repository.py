"""Reads for checking the books: every customer's ledger, lots, debt and redemptions, page
by page, and the set-based scans that find a customer out of balance in one statement."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.accounts.repository import among, entry_from_row, lot_from_row
from services.points.db import accounts, ledger, lots, redemptions
from services.points.domain.invariants import InvariantViolation, RedemptionRecord, check_account
from services.points.domain.lots import LotDraw

_T = TypeVar("_T")


class AuditRepository:
    """What the invariant check reads (no locks)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def customers_page(self, limit: int, after: str | None) -> list[str]:
        """Customer ids in order, `limit` after `after` (to check the books page by page)."""
        query = sa.select(accounts.c.customer_id).order_by(accounts.c.customer_id).limit(limit)
        if after is not None:
            query = query.where(accounts.c.customer_id > after)
        return list((await self.conn.execute(query)).scalars())

    async def violations_of(self, customer_ids: Sequence[str]) -> list[InvariantViolation]:
        """Every invariant violation of these customers, read in four set-based queries."""
        if not customer_ids:
            return []
        conn = self.conn
        debts = dict(
            (
                await conn.execute(
                    sa.select(accounts.c.customer_id, accounts.c.debt).where(
                        among(accounts.c.customer_id, customer_ids)
                    )
                )
            ).all()
        )
        mine = among(ledger.c.customer_id, customer_ids)
        entries = _grouped(
            await conn.execute(sa.select(ledger).where(mine).order_by(ledger.c.id)),
            entry_from_row,
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

    async def out_of_balance(self, limit: int = 1000) -> list[str]:
        """Customers whose ledger balance differs from their lots minus debt (one SQL scan)."""
        rows = await self.conn.execute(
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

    async def ledger_out_of_step(self, limit: int = 1000) -> list[str]:
        """Customers whose stored balance is not the sum of their ledger entries (one scan)."""
        rows = await self.conn.execute(
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
