"""Breaches and compensations as stored: the reads and writes of a `BreachBook`, the party
locks, the caps' usage, and the held parts a review or an incident decides.

Loading a book costs a fixed handful of statements whatever the batch holds: one reads and
locks every breach row the batch touches (`FOR UPDATE`, sorted), at most two read what the
caps need (the customers' granted compensations in the 30-day windows, the merchants'
spend per budget month), one the held self-reported parts; writing costs one statement
per table. The caller takes the party locks first (`lock_parties`), in the one order every
path takes them: merchants, then customers, each sorted.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import (
    among,
    breaches,
    compensations,
    guarantee_claims,
    merchant_month_grants,
    reward_definitions,
)
from services.rewards.domain.breach_book import (
    SELF_REPORTED,
    BookChanges,
    BreachBook,
    BreachReport,
    BreachRow,
    GrantTotals,
    _Granted,
    needs_customer_usage,
    needs_merchant_months,
)
from services.rewards.domain.guarantee import breach_key
from services.rewards.domain.guarantee_limits import (
    CUSTOMER_CAP_WINDOW,
    CompensationLimits,
    budget_month,
    customer_window_start,
)
from shared.db import transaction_driver

# One statement for every lock: the keys arrive in the order they must be taken (unnest
# keeps array order), so a batch of a thousand customers costs one round trip.
_LOCK_ALL = sa.text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(CAST(:keys AS text[])) AS k"
)
_UPDATE_BREACH = (
    sa.update(breaches)
    .where(breaches.c.breach_key == sa.bindparam("b_key"))
    .values(
        worst_value=sa.bindparam("b_worst_value"),
        worst_unit=sa.bindparam("b_worst_unit"),
        tier=sa.bindparam("b_tier"),
        vouchers=sa.bindparam("b_vouchers", type_=pg.ARRAY(sa.Text)),
        points=sa.bindparam("b_points"),
        refund_minor=sa.bindparam("b_refund_minor"),
        updated_at=sa.bindparam("b_updated_at"),
    )
)
# Per customer: the grants of the shared window summed (with their distinct breach keys),
# and the others of the union of the windows as parallel arrays. One aggregate per customer
# (LATERAL): PostgreSQL cannot merge an aggregating subquery into the join, so it reads each
# customer's grants by `ix_compensations_customer_granted`, whatever its statistics say.
# Written as one aggregate over the whole set, a fresh table's planner (no ANALYZE yet: a
# time range it takes for very selective) scanned every grant of the window through the
# merchant's index instead, 76-118 ms a batch by 30,000 grants (`python -m bench rewards`,
# auto_explain). A customer without grants comes back as a row of NULLs.
_CUSTOMER_GRANTS = sa.text(
    "SELECT k.customer_id, g.* FROM unnest(CAST(:customers AS text[])) AS k(customer_id)"
    " CROSS JOIN LATERAL (SELECT"
    " sum(refund_minor + voucher_value_minor) FILTER (WHERE shared),"
    " sum(points) FILTER (WHERE shared),"
    " array_agg(DISTINCT breach_key) FILTER (WHERE shared),"
    " array_agg(decided_at) FILTER (WHERE NOT shared),"
    " array_agg(refund_minor + voucher_value_minor) FILTER (WHERE NOT shared),"
    " array_agg(breach_key) FILTER (WHERE NOT shared),"
    " array_agg(points) FILTER (WHERE NOT shared) "
    " FROM (SELECT *, decided_at > :shared_start AND decided_at < :shared_end AS shared"
    "  FROM compensations c WHERE c.customer_id = k.customer_id"
    "  AND status = 'granted' AND decided_at > :start AND decided_at < :end) AS granted"
    ") AS g"
)
_COPY_FROM = 64  # rows; fewer go by INSERT
_BREACH_COLUMNS = ("worst_value", "worst_unit", "tier", "vouchers", "points", "refund_minor")


def party_lock_keys(merchant_ids: Iterable[str], customer_ids: Iterable[str]) -> list[str]:
    """The advisory lock keys in the one order every path takes them: merchants, customers."""
    merchants = [f"rewards:merchant:{m}" for m in sorted(set(merchant_ids))]
    return merchants + [f"rewards:customer:{c}" for c in sorted(set(customer_ids))]


def _update_params(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "b_key": row["breach_key"],
        **{f"b_{name}": row[name] for name in _BREACH_COLUMNS},
        "b_updated_at": row["updated_at"],
    }


def _granted_in(start: datetime, end: datetime) -> list[sa.ColumnElement[bool]]:
    return [
        compensations.c.status == "granted",
        compensations.c.decided_at >= start,
        compensations.c.decided_at < end,
    ]


class CompensationRepository:
    """Breaches, compensations and the advisory locks that order every writer."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def lock_parties(self, merchant_ids: Iterable[str], customer_ids: Iterable[str]) -> None:
        """Take the merchant, then the customer advisory locks, each set in sorted order."""
        keys = party_lock_keys(merchant_ids, customer_ids)
        if keys:
            await self.conn.execute(_LOCK_ALL, {"keys": keys})

    async def load_book(
        self,
        reports: Sequence[BreachReport],
        limits: dict[str, CompensationLimits],
        voucher_values: dict[str, int],
    ) -> BreachBook:
        """Lock and read the breaches of `reports`, and what their merchants' caps count
        (with `voucher_values`, what each valued reward's voucher is worth).

        The caller holds the merchant and customer advisory locks of every report.
        """
        keys = sorted({breach_key(r.order_id, r.promise) for r in reports})
        query = (
            sa.select(breaches)
            .where(among(breaches.c.breach_key, keys))
            .order_by(breaches.c.breach_key)
            .with_for_update()
        )
        found = {
            row.breach_key: BreachRow(dict(row._mapping), stored=True)
            for row in await self.conn.execute(query)
        }
        book = BreachBook(limits, found, voucher_values=voucher_values)
        capped = [r for r in reports if needs_customer_usage(limits[r.merchant_id])]
        if capped:
            book.customer_totals, book.customer_grants = await self._customer_grants(capped)
        budgeted = [r for r in reports if needs_merchant_months(limits[r.merchant_id])]
        if budgeted:
            book.merchant_months = await self._merchant_months(budgeted)
        if any(not r.self_reported for r in reports):
            book.held = await self._held_self_reported(sorted(found))
        return book

    async def write_book(self, book: BreachBook) -> list[dict[str, Any]]:
        """Store the changed breaches and the new compensations; returns those to deliver
        (confirmed held parts now granted, then the new rows), in order."""
        changes: BookChanges = book.drain()
        await self._insert(breaches, changes.fresh_breaches)
        if changes.changed_breaches:
            await self.conn.execute(
                _UPDATE_BREACH, [_update_params(row) for row in changes.changed_breaches]
            )
        await self._insert(compensations, changes.assessed)
        confirmed = await self._write_confirmed(changes.confirmed)
        return confirmed + changes.assessed

    async def _insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows of one shape: a few by INSERT, a batch's worth by one binary COPY.

        An executemany INSERT through SQLAlchemy and the driver handles every value of
        every row in Python (two rows per incident, a sixth of the consumer's own CPU in
        `python -m bench rewards`); COPY encodes each value once, for one more round trip,
        which only a batch repays. A duplicate (breach, tier) fails either way.
        """
        if len(rows) < _COPY_FROM:
            if rows:
                await self.conn.execute(sa.insert(table), rows)
            return
        columns = list(rows[0])
        record = itemgetter(*columns)  # one row's values as a tuple, built in C
        driver = await transaction_driver(self.conn)
        await driver.copy_records_to_table(
            table.name, records=[record(row) for row in rows], columns=columns
        )

    async def voucher_values(self) -> dict[str, int]:
        """What each reward's voucher is worth in minor units, for the caps (unvalued: absent)."""
        rows = await self.conn.execute(
            sa.select(reward_definitions.c.reward_code, reward_definitions.c.value_minor).where(
                reward_definitions.c.value_minor.is_not(None)
            )
        )
        return {row.reward_code: int(row.value_minor) for row in rows}

    async def _customer_grants(
        self, reports: Sequence[BreachReport]
    ) -> tuple[dict[str, GrantTotals], dict[str, list[_Granted]]]:
        """The reports' customers' granted compensations in the windows their times open:
        summed over the part every window holds, one by one outside it.

        Every report's window (at - 30 days, at + 30 days) holds (latest - 30 days, earliest +
        30 days); a batch of live incidents spans seconds, so nearly every grant lies in that
        shared part and comes back as one sum and one array of breach keys per customer
        instead of a row each (the rows grew with every grant of the window: `python -m bench
        rewards`). A batch spanning more than 60 days shares nothing and reads rows only.
        """
        earliest, latest = min(r.at for r in reports), max(r.at for r in reports)
        shared_start, shared_end = customer_window_start(latest), earliest + CUSTOMER_CAP_WINDOW
        rows = await self.conn.execute(
            _CUSTOMER_GRANTS,
            {
                "customers": sorted({r.customer_id for r in reports}),
                "start": customer_window_start(earliest),
                "end": latest + CUSTOMER_CAP_WINDOW,
                "shared_start": shared_start,
                "shared_end": shared_end,
            },
        )
        totals: dict[str, GrantTotals] = {}
        found: dict[str, list[_Granted]] = {}
        for customer, money, points, keys, times, moneys, grant_keys, grant_points in rows:
            if keys is not None:
                totals[customer] = GrantTotals(
                    shared_start, shared_end, int(money), int(points), frozenset(keys)
                )
            if times is not None:
                found[customer] = [
                    _Granted(*grant)
                    for grant in zip(times, moneys, grant_keys, grant_points, strict=True)
                ]
        return totals, found

    async def _merchant_months(
        self, reports: Sequence[BreachReport]
    ) -> dict[tuple[str, datetime], tuple[int, int]]:
        """Money and points each merchant granted in each budget month (UTC) of the reports:
        the running totals `merchant_month_grants` keeps (rewards_0008), one row per month
        instead of a sum over every grant of it."""
        start = budget_month(min(r.at for r in reports))[0]
        end = budget_month(max(r.at for r in reports))[1]
        months = merchant_month_grants.c
        rows = await self.conn.execute(
            sa.select(months.merchant_id, months.month, months.money_minor, months.points).where(
                among(months.merchant_id, sorted({r.merchant_id for r in reports})),
                months.month >= start.replace(tzinfo=None),
                months.month < end.replace(tzinfo=None),
            )
        )
        return {(row[0], row[1].replace(tzinfo=UTC)): (int(row[2]), int(row[3])) for row in rows}

    async def _held_self_reported(self, keys: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Held parts of customers' own reports on these breaches (their rows are locked)."""
        if not keys:
            return {}
        rows = await self.conn.execute(
            sa.select(compensations)
            .where(
                among(compensations.c.breach_key, keys),
                compensations.c.status == "in_review",
                sa.literal(SELF_REPORTED) == sa.any_(compensations.c.review_reasons),
            )
            .order_by(compensations.c.breach_key, compensations.c.tier)
            .with_for_update()
        )
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            found[row.breach_key].append(dict(row._mapping))
        return dict(found)

    async def _write_confirmed(self, confirmed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store held rows an incident confirmed (paid on the order as it then was); granted
        ones are returned for delivery, and the claims they settle are granted with them."""
        for row in confirmed:
            await self.conn.execute(
                sa.update(compensations)
                .where(compensations.c.compensation_id == row["compensation_id"])
                .values(
                    status=row["status"],
                    review_reasons=row["review_reasons"],
                    refund_minor=row["refund_minor"],
                    points=row["points"],
                    decided_at=row["decided_at"],
                    decided_by=row["decided_by"],
                )
            )
        granted = [row for row in confirmed if row["status"] == "granted"]
        if granted:
            await self.conn.execute(
                sa.update(guarantee_claims)
                .where(
                    guarantee_claims.c.compensation_id.in_([r["compensation_id"] for r in granted]),
                    guarantee_claims.c.status == "in_review",
                )
                .values(
                    status="granted",
                    decided_at=granted[0]["decided_at"],
                    explanation="confirmed by an incident measured by operations",
                )
            )
        return granted

    async def parties_of(self, compensation_id: uuid.UUID) -> Any:
        """The merchant and customer of a compensation (to lock them), or None."""
        return (
            await self.conn.execute(
                sa.select(compensations.c.merchant_id, compensations.c.customer_id).where(
                    compensations.c.compensation_id == compensation_id
                )
            )
        ).first()

    async def get(self, compensation_id: uuid.UUID, *, lock: bool = False) -> Any:
        query = sa.select(compensations).where(compensations.c.compensation_id == compensation_id)
        return (await self.conn.execute(query.with_for_update() if lock else query)).first()

    async def review_reasons(self, compensation_id: uuid.UUID | None) -> list[str]:
        reasons = await self.conn.scalar(
            sa.select(compensations.c.review_reasons).where(
                compensations.c.compensation_id == compensation_id
            )
        )
        return list(reasons or [])

    async def record_decision(
        self, compensation_id: uuid.UUID, decided: dict[str, Any], note: str | None
    ) -> None:
        await self.conn.execute(
            sa.update(compensations)
            .where(compensations.c.compensation_id == compensation_id)
            .values(**decided, decision_note=note)
        )

    async def granted_beside(self, row: Any) -> tuple[int, int]:
        """Refund granted so far on the row's breach, and its highest granted tier, the row
        itself left out."""
        paid, top = (
            await self.conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(compensations.c.refund_minor), 0),
                    sa.func.coalesce(sa.func.max(compensations.c.tier), 0),
                ).where(
                    compensations.c.breach_key == row.breach_key,
                    compensations.c.status == "granted",
                    compensations.c.compensation_id != row.compensation_id,
                )
            )
        ).one()
        return int(paid), int(top)

    async def lower_refund(self, row: Any, refund_minor: int) -> None:
        """Store a held compensation's lowered refund, and its breach's total with it."""
        cut = int(row.refund_minor) - refund_minor
        if cut <= 0:
            return
        await self.conn.execute(
            sa.update(compensations)
            .where(compensations.c.compensation_id == row.compensation_id)
            .values(refund_minor=refund_minor)
        )
        await self.conn.execute(
            sa.update(breaches)
            .where(breaches.c.breach_key == row.breach_key)
            .values(refund_minor=breaches.c.refund_minor - cut)
        )

    async def in_review_page(
        self, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[Any]:
        """Compensations waiting for a person, oldest first, after the (created_at, id) given."""
        query = sa.select(compensations).where(compensations.c.status == "in_review")
        if after is not None:
            query = query.where(
                sa.tuple_(compensations.c.created_at, compensations.c.compensation_id)
                > sa.tuple_(sa.literal(after[0]), sa.literal(after[1]))
            )
        order = (compensations.c.created_at, compensations.c.compensation_id)
        return list((await self.conn.execute(query.order_by(*order).limit(limit))).all())

    async def merchants(self) -> list[str]:
        """Every merchant with a compensation."""
        return list(
            (await self.conn.execute(sa.select(compensations.c.merchant_id).distinct())).scalars()
        )

    async def held_count(self, merchant_id: str) -> int:
        held = await self.conn.scalar(
            sa.select(sa.func.count()).where(
                compensations.c.merchant_id == merchant_id,
                compensations.c.status == "in_review",
            )
        )
        return int(held or 0)

    async def month_refunds(self, merchant_id: str, now: datetime) -> int:
        """Refunds the merchant granted in the budget month of `now`."""
        spent = await self.conn.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(compensations.c.refund_minor), 0)).where(
                compensations.c.merchant_id == merchant_id, *_granted_in(*budget_month(now))
            )
        )
        return int(spent or 0)

    async def month_money(self, merchant_id: str, now: datetime) -> int:
        """Money the merchant granted this budget month as its cap counts it: refunds plus
        the value of vouchers."""
        total = compensations.c.refund_minor + compensations.c.voucher_value_minor
        spent = await self.conn.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(total), 0)).where(
                compensations.c.merchant_id == merchant_id, *_granted_in(*budget_month(now))
            )
        )
        return int(spent or 0)
