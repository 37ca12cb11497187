"""Guarantee policies and compensation limits as stored data, and the measurements they judge.

A policy is a JSON document per (merchant, promise), so a merchant changes its promise
without a deploy:

    {"unit": "minutes", "claim_window_days": 7, "self_reported_max_tier": 1,
     "tiers": [{"over": 10, "vouchers": ["fruit-plate"]},
               {"over": 15, "refund_basis_points": 2000},
               {"over": 20, "refund_basis_points": 20000, "points": 500}]}
"""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import guarantee_policies, merchant_limits, reward_definitions
from services.rewards.domain.errors import RewardsRuleError
from services.rewards.domain.guarantee import (
    DEFAULT_SELF_REPORTED_MAX_TIER,
    Compensation,
    GuaranteePolicy,
    GuaranteeTier,
    Measurement,
    MeasureUnit,
    PointsCompensation,
    PromiseKind,
    RefundCompensation,
    VoucherCompensation,
)
from services.rewards.domain.guarantee_limits import CompensationLimits
from shared.errors import Unprocessable

DEFAULT_LIMITS_MERCHANT = "*"  # the limits row that applies to merchants without their own
_SECONDS_PER = {"seconds": 1, "minutes": 60, "hours": 3600}


def promise_kind(text: str) -> PromiseKind | None:
    """The promise named by `text`, or None when no policy can exist for it."""
    try:
        return PromiseKind(text)
    except ValueError:
        return None


def measurement(value: Decimal, unit: str) -> Measurement:
    """An edge measurement (a decimal in seconds, minutes, hours, or a yes/no breach).

    Durations are judged in whole seconds, rounded down: 10.5 minutes is 630 seconds,
    over a 10-minute promise; a reading never rounds up into a higher tier.
    """
    if unit in ("breached", "breach"):
        return Measurement.breach(value > 0)
    if unit not in _SECONDS_PER:
        raise Unprocessable(f"unknown measurement unit {unit!r}", code="measurement_unit_unknown")
    seconds = (value * _SECONDS_PER[unit]).to_integral_value(rounding=ROUND_FLOOR)
    return Measurement.seconds(int(seconds))


def _tier(document: dict[str, Any]) -> GuaranteeTier:
    lines: list[Compensation] = [VoucherCompensation(code) for code in document.get("vouchers", [])]
    if document.get("points"):
        lines.append(PointsCompensation(int(document["points"])))
    if document.get("refund_basis_points"):
        lines.append(RefundCompensation(int(document["refund_basis_points"])))
    return GuaranteeTier(int(document["over"]), tuple(lines))


def policy_from_document(
    merchant_id: str,
    promise: str,
    unit: str,
    tiers: list[dict[str, Any]],
    window_days: int,
    self_reported_max_tier: int = DEFAULT_SELF_REPORTED_MAX_TIER,
) -> GuaranteePolicy:
    """A policy from its stored form; raises `Unprocessable` naming what is inconsistent."""
    kind = promise_kind(promise)
    if kind is None:
        known = ", ".join(k.value for k in PromiseKind)
        raise Unprocessable(
            f"unknown promise kind {promise!r}; known: {known}", code="promise_unknown"
        )
    try:
        return GuaranteePolicy(
            merchant_id=merchant_id,
            promise=kind,
            unit=MeasureUnit(unit),
            tiers=tuple(_tier(t) for t in tiers),
            claim_window=timedelta(days=window_days),
            self_reported_max_tier=self_reported_max_tier,
        )
    except (RewardsRuleError, KeyError, TypeError, ValueError) as error:
        raise Unprocessable(f"invalid policy: {error}", code="policy_invalid") from error


def tier_documents(policy: GuaranteePolicy) -> list[dict[str, Any]]:
    """The stored form of a policy's tiers."""
    documents = []
    for tier in policy.tiers:
        document: dict[str, Any] = {"over": tier.over}
        for line in tier.compensations:
            if isinstance(line, VoucherCompensation):
                document.setdefault("vouchers", []).append(line.reward_code)
            elif isinstance(line, PointsCompensation):
                document["points"] = line.points
            else:
                document["refund_basis_points"] = line.basis_points_of_order
        documents.append(document)
    return documents


async def load_policy(
    conn: AsyncConnection, merchant_id: str, promise: PromiseKind
) -> GuaranteePolicy | None:
    row = (
        await conn.execute(
            sa.select(guarantee_policies).where(
                guarantee_policies.c.merchant_id == merchant_id,
                guarantee_policies.c.promise_kind == promise.value,
            )
        )
    ).first()
    if row is None:
        return None
    return _policy(row)


def _policy(row: Any) -> GuaranteePolicy:
    return policy_from_document(
        row.merchant_id,
        row.promise_kind,
        row.unit,
        row.tiers,
        row.claim_window_days,
        row.self_reported_max_tier,
    )


async def save_policy(conn: AsyncConnection, policy: GuaranteePolicy) -> None:
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
    await conn.execute(
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


async def load_limits(conn: AsyncConnection, merchant_id: str) -> CompensationLimits:
    """The merchant's caps, else the default row's, else no caps."""
    return (await load_limits_of(conn, {merchant_id}))[merchant_id]


_LIMIT_FIELDS = (
    "customer_refund_cap_minor",
    "customer_breach_cap",
    "merchant_monthly_budget_minor",
    "customer_points_cap",
    "merchant_monthly_points_budget",
)


async def save_limits(conn: AsyncConnection, merchant_id: str, limits: CompensationLimits) -> None:
    values = {"merchant_id": merchant_id, **{k: getattr(limits, k) for k in _LIMIT_FIELDS}}
    statement = pg.insert(merchant_limits).values(**values)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["merchant_id"],
            set_={k: statement.excluded[k] for k in values if k != "merchant_id"},
        )
    )


async def load_policies(
    conn: AsyncConnection, wanted: set[tuple[str, PromiseKind]]
) -> dict[tuple[str, PromiseKind], GuaranteePolicy | None]:
    """The policy of each (merchant, promise) in one read; None where there is none."""
    if not wanted:
        return {}
    merchants = sorted({merchant for merchant, _ in wanted})
    rows = await conn.execute(
        sa.select(guarantee_policies).where(guarantee_policies.c.merchant_id.in_(merchants))
    )
    found: dict[tuple[str, PromiseKind], GuaranteePolicy | None] = dict.fromkeys(wanted)
    for row in rows:
        kind = promise_kind(row.promise_kind)
        if kind is not None and (row.merchant_id, kind) in wanted:
            found[(row.merchant_id, kind)] = _policy(row)
    return found


async def load_limits_of(
    conn: AsyncConnection, merchant_ids: set[str]
) -> dict[str, CompensationLimits]:
    """Each merchant's caps in one read: each cap its own, else the default row's.

    There are no unlimited defaults: the migration seeds the default row (`*`), so a cap a
    merchant left empty is the platform's default, not "no cap".
    """
    if not merchant_ids:
        return {}
    wanted = sorted(merchant_ids | {DEFAULT_LIMITS_MERCHANT})
    rows = {
        row.merchant_id: row
        for row in await conn.execute(
            sa.select(merchant_limits).where(merchant_limits.c.merchant_id.in_(wanted))
        )
    }
    default = rows.get(DEFAULT_LIMITS_MERCHANT)
    return {m: _limits(rows.get(m), default) for m in merchant_ids}


def _limits(own: Any, default: Any) -> CompensationLimits:
    def cap(name: str) -> int | None:
        mine = getattr(own, name, None) if own is not None else None
        return mine if mine is not None else getattr(default, name, None)

    return CompensationLimits(**{name: cap(name) for name in _LIMIT_FIELDS})


async def voucher_values(conn: AsyncConnection) -> dict[str, int]:
    """What each reward's voucher is worth in minor units, for the caps (unvalued: absent)."""
    rows = await conn.execute(
        sa.select(reward_definitions.c.reward_code, reward_definitions.c.value_minor).where(
            reward_definitions.c.value_minor.is_not(None)
        )
    )
    return {row.reward_code: int(row.value_minor) for row in rows}
