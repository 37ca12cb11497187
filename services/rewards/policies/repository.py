"""Guarantee policies and compensation limits as stored (one JSON document per merchant
and promise; one limits row per merchant, `*` the default)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import guarantee_policies, merchant_limits
from services.rewards.domain.guarantee import GuaranteePolicy, PromiseKind
from services.rewards.domain.guarantee_limits import CompensationLimits
from services.rewards.policies.service import (
    DEFAULT_LIMITS_MERCHANT,
    LIMIT_FIELDS,
    limits_of_rows,
    policy_of_row,
    promise_kind,
    tier_documents,
)


class PolicyRepository:
    """Policies and limits."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def all_policies(self, limit: int, after: tuple[str, str] | None) -> list[Any]:
        """Stored policy rows in (merchant, promise) order, after the pair given."""
        query = sa.select(guarantee_policies)
        if after is not None:
            key = sa.tuple_(guarantee_policies.c.merchant_id, guarantee_policies.c.promise_kind)
            query = query.where(key > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
        order = (guarantee_policies.c.merchant_id, guarantee_policies.c.promise_kind)
        return list((await self.conn.execute(query.order_by(*order).limit(limit))).all())

    async def limit_merchants(self) -> list[str]:
        """Every merchant with a limits row (the default `*` among them)."""
        rows = await self.conn.execute(sa.select(merchant_limits.c.merchant_id))
        return list(rows.scalars())

    async def policy(self, merchant_id: str, promise: PromiseKind) -> GuaranteePolicy | None:
        row = (
            await self.conn.execute(
                sa.select(guarantee_policies).where(
                    guarantee_policies.c.merchant_id == merchant_id,
                    guarantee_policies.c.promise_kind == promise.value,
                )
            )
        ).first()
        if row is None:
            return None
        return policy_of_row(row)

    async def save_policy(self, policy: GuaranteePolicy) -> None:
        """Create or replace a merchant's policy for one promise."""
        values = {
            "merchant_id": policy.merchant_id,
            "promise_kind": policy.promise.value,
            "unit": policy.unit.value,
            "tiers": tier_documents(policy),
            "claim_window_days": policy.claim_window.days,
            "self_reported_max_tier": policy.self_reported_max_tier,
            "updated_at": sa.func.now(),
        }
        statement = pg.insert(guarantee_policies).values(**values)
        await self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=["merchant_id", "promise_kind"],
                set_={
                    k: statement.excluded[k]
                    for k in (
                        "unit",
                        "tiers",
                        "claim_window_days",
                        "self_reported_max_tier",
                        "updated_at",
                    )
                },
            )
        )

    async def limits(self, merchant_id: str) -> CompensationLimits:
        """The merchant's caps, else the default row's, else no caps."""
        return (await self.limits_of({merchant_id}))[merchant_id]

    async def save_limits(self, merchant_id: str, limits: CompensationLimits) -> None:
        values = {"merchant_id": merchant_id, **{k: getattr(limits, k) for k in LIMIT_FIELDS}}
        statement = pg.insert(merchant_limits).values(**values)
        await self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=["merchant_id"],
                set_={k: statement.excluded[k] for k in values if k != "merchant_id"},
            )
        )

    async def policies(
        self, wanted: set[tuple[str, PromiseKind]]
    ) -> dict[tuple[str, PromiseKind], GuaranteePolicy | None]:
        """The policy of each (merchant, promise) in one read; None where there is none."""
        if not wanted:
            return {}
        merchants = sorted({merchant for merchant, _ in wanted})
        rows = await self.conn.execute(
            sa.select(guarantee_policies).where(guarantee_policies.c.merchant_id.in_(merchants))
        )
        found: dict[tuple[str, PromiseKind], GuaranteePolicy | None] = dict.fromkeys(wanted)
        for row in rows:
            kind = promise_kind(row.promise_kind)
            if kind is not None and (row.merchant_id, kind) in wanted:
                found[(row.merchant_id, kind)] = policy_of_row(row)
        return found

    async def limits_of(self, merchant_ids: set[str]) -> dict[str, CompensationLimits]:
        """Each merchant's caps in one read: each cap its own, else the default row's.

        There are no unlimited defaults: the migration seeds the default row (`*`), so a cap a
        merchant left empty is the platform's default, not "no cap".
        """
        if not merchant_ids:
            return {}
        wanted = sorted(merchant_ids | {DEFAULT_LIMITS_MERCHANT})
        rows = {
            row.merchant_id: row
            for row in await self.conn.execute(
                sa.select(merchant_limits).where(merchant_limits.c.merchant_id.in_(wanted))
            )
        }
        default = rows.get(DEFAULT_LIMITS_MERCHANT)
        return {m: limits_of_rows(rows.get(m), default) for m in merchant_ids}
