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


def policy_of_row(row: Any) -> GuaranteePolicy:
    return policy_from_document(
        row.merchant_id,
        row.promise_kind,
        row.unit,
        row.tiers,
        row.claim_window_days,
        row.self_reported_max_tier,
    )


LIMIT_FIELDS = (
    "customer_refund_cap_minor",
    "customer_breach_cap",
    "merchant_monthly_budget_minor",
    "customer_points_cap",
    "merchant_monthly_points_budget",
)


def limits_of_rows(own: Any, default: Any) -> CompensationLimits:
    def cap(name: str) -> int | None:
        mine = getattr(own, name, None) if own is not None else None
        return mine if mine is not None else getattr(default, name, None)

    return CompensationLimits(**{name: cap(name) for name in LIMIT_FIELDS})
