"""Vouchers and the reward definitions they are issued from, as stored.

`origin_ref` is unique, so inserting a voucher whose cause already has one inserts
nothing (a replay); a redemption is a conditional update on an unredeemed row.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import reward_definitions, vouchers
from shared.db import transaction_driver

_COPY_FROM = 64  # vouchers; fewer go by INSERT


class VoucherRepository:
    """Vouchers and reward definitions."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def definitions_of(self, reward_codes: set[str]) -> dict[str, tuple[int, str | None]]:
        """Validity days and merchant binding of each known reward code, in one read."""
        if not reward_codes:
            return {}
        rows = await self.conn.execute(
            sa.select(
                reward_definitions.c.reward_code,
                reward_definitions.c.valid_days,
                reward_definitions.c.merchant_id,
            ).where(reward_definitions.c.reward_code.in_(sorted(reward_codes)))
        )
        return {row.reward_code: (row.valid_days, row.merchant_id) for row in rows}

    async def insert_new(self, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
        """Insert the vouchers whose origin has none yet; returns the ids inserted."""
        statement = (
            pg.insert(vouchers)
            .on_conflict_do_nothing(index_elements=["origin_ref"])
            .returning(vouchers.c.voucher_id)
        )
        return set((await self.conn.execute(statement, rows)).scalars())

    async def insert_fresh(self, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
        """Insert vouchers whose origin cannot have one yet; returns the ids inserted (all).

        For the vouchers of compensations this transaction just created or granted: their
        origin (`compensation:<id>:<reward>`) names a compensation nobody paid before, so a
        batch's worth goes by one binary COPY, which an executemany INSERT ... RETURNING
        costs several times over in Python (`python -m bench rewards`). Should an origin
        have a voucher after all, the unique `origin_ref` fails the whole transaction: a
        voucher is still never issued twice.
        """
        if len(rows) < _COPY_FROM:
            return await self.insert_new(rows)
        columns = list(rows[0])
        record = itemgetter(*columns)  # one row's values as a tuple, built in C
        driver = await transaction_driver(self.conn)
        await driver.copy_records_to_table(
            "vouchers", records=[record(row) for row in rows], columns=columns
        )
        return {row["voucher_id"] for row in rows}

    async def by_code(self, code: str, *, lock: bool = False) -> Any:
        query = sa.select(vouchers).where(vouchers.c.code == code)
        return (await self.conn.execute(query.with_for_update() if lock else query)).first()

    async def by_id(self, voucher_id: uuid.UUID) -> Any:
        query = sa.select(vouchers).where(vouchers.c.voucher_id == voucher_id)
        return (await self.conn.execute(query)).one()

    async def mark_redeemed(
        self, voucher_id: uuid.UUID, merchant_id: str, store_id: str | None, now: datetime
    ) -> Any:
        return (
            await self.conn.execute(
                sa.update(vouchers)
                .where(vouchers.c.voucher_id == voucher_id, vouchers.c.redeemed_at.is_(None))
                .values(redeemed_at=now, redeemed_by=merchant_id, redeemed_store=store_id)
                .returning(vouchers)
            )
        ).one()

    async def expire_due(self, now: datetime, limit: int) -> list[Any]:
        """Mark up to `limit` vouchers past their expiry (SKIP LOCKED); returns them."""
        due = (
            (
                await self.conn.execute(
                    sa.select(vouchers.c.voucher_id)
                    .where(
                        vouchers.c.redeemed_at.is_(None),
                        vouchers.c.expired_at.is_(None),
                        vouchers.c.expires_at <= now,
                    )
                    .order_by(vouchers.c.expires_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        if not due:
            return []
        rows = await self.conn.execute(
            sa.update(vouchers)
            .where(vouchers.c.voucher_id.in_(due))
            .values(expired_at=vouchers.c.expires_at)
            .returning(
                vouchers.c.voucher_id,
                vouchers.c.customer_id,
                vouchers.c.reward_code,
                vouchers.c.expires_at,
            )
        )
        return list(rows.all())

    async def customer_page(
        self,
        customer_id: str,
        merchant_id: str | None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> list[Any]:
        """A customer's vouchers, newest first, older than `before` (issued_at, id); only
        those bound to `merchant_id` when one is given."""
        query = sa.select(vouchers).where(vouchers.c.customer_id == customer_id)
        if merchant_id is not None:
            query = query.where(vouchers.c.merchant_id == merchant_id)
        if before is not None:
            key = sa.tuple_(vouchers.c.issued_at, vouchers.c.voucher_id)
            query = query.where(key < sa.tuple_(sa.literal(before[0]), sa.literal(before[1])))
        order = (vouchers.c.issued_at.desc(), vouchers.c.voucher_id.desc())
        return list((await self.conn.execute(query.order_by(*order).limit(limit))).all())

    async def definitions_page(self, limit: int, after: str | None) -> list[Any]:
        query = sa.select(reward_definitions)
        if after is not None:
            query = query.where(reward_definitions.c.reward_code > after)
        query = query.order_by(reward_definitions.c.reward_code).limit(limit)
        return list((await self.conn.execute(query)).all())

    async def save_definition(self, values: dict[str, Any]) -> None:
        statement = pg.insert(reward_definitions).values(**values)
        await self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=["reward_code"],
                set_={k: statement.excluded[k] for k in values if k != "reward_code"},
            )
        )
