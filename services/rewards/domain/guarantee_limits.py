"""Caps on guarantee compensation, and routing to manual review when one is hit.

Financial rewards can become a burden (DOMAIN.md section 1), so compensation is
capped: per customer over a rolling 30 days (money refunded and/or number of
breaches compensated) and per merchant per calendar month (money refunded).
A compensation that would exceed a cap is never dropped: it is routed to manual
review, where an admin approves or rejects it.

What counts: caps measure **money** (refunds plus the value of the vouchers
granted, from each reward definition's `value`), **points** credited and the
**number of distinct breaches** compensated. A top-up of an already compensated
breach adds money and points but is not a new breach. A cap left empty by a
merchant falls back to the platform default (`policies.DEFAULT_LIMITS_MERCHANT`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum

from services.rewards.domain.errors import InvalidRuleError
from services.rewards.domain.guarantee import CompensationSet
from services.rewards.domain.timestamps import require_aware

CUSTOMER_CAP_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class CompensationLimits:
    """The caps that apply to one merchant's guarantee; None means no cap."""

    customer_refund_cap_minor: int | None = None
    customer_breach_cap: int | None = None
    merchant_monthly_budget_minor: int | None = None
    customer_points_cap: int | None = None
    merchant_monthly_points_budget: int | None = None

    def __post_init__(self) -> None:
        caps = (
            self.customer_refund_cap_minor,
            self.customer_breach_cap,
            self.merchant_monthly_budget_minor,
            self.customer_points_cap,
            self.merchant_monthly_points_budget,
        )
        if any(cap is not None and cap < 0 for cap in caps):
            raise InvalidRuleError(f"compensation caps must be >= 0, got {caps}")


@dataclass(frozen=True)
class PastCompensation:
    """A compensation already granted (or approved in review), as the caps see it."""

    customer_id: str
    merchant_id: str
    breach_key: str
    granted_at: datetime
    refund_minor: int

    def __post_init__(self) -> None:
        require_aware(self.granted_at, "the time a compensation was granted")


@dataclass(frozen=True)
class CustomerUsage:
    """A customer's compensation inside the rolling window."""

    refund_minor: int = 0
    breaches: int = 0
    points: int = 0


def customer_window_start(now: datetime) -> datetime:
    """Start of the rolling 30-day window ending at `now` (exclusive start)."""
    return require_aware(now, "now") - CUSTOMER_CAP_WINDOW


def customer_usage(
    history: Iterable[PastCompensation], customer_id: str, now: datetime
) -> CustomerUsage:
    """Money and distinct breaches compensated to `customer_id` in the 30 days up to `now`."""
    start = customer_window_start(now)
    in_window = [
        past
        for past in history
        if past.customer_id == customer_id and start < past.granted_at <= now
    ]
    return CustomerUsage(
        refund_minor=sum(past.refund_minor for past in in_window),
        breaches=len({past.breach_key for past in in_window}),
    )


def budget_month(now: datetime, zone: tzinfo = UTC) -> tuple[datetime, datetime]:
    """The calendar month containing `now` in `zone`, as [start, end) instants.

    UTC by default so every instance agrees; a merchant with a local budget month
    passes its own zone.
    """
    local = require_aware(now, "now").astimezone(zone)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_year, next_month = divmod(start.month, 12)
    end = start.replace(year=start.year + next_year, month=next_month + 1)
    return start, end


def merchant_month_spend(
    history: Iterable[PastCompensation], merchant_id: str, now: datetime, zone: tzinfo = UTC
) -> int:
    """Money refunded by `merchant_id` in the budget month containing `now`."""
    start, end = budget_month(now, zone)
    return sum(
        past.refund_minor
        for past in history
        if past.merchant_id == merchant_id and start <= past.granted_at < end
    )


class Route(StrEnum):
    """Where a compensation goes next."""

    NOTHING_OWED = "nothing_owed"
    GRANT = "grant"
    MANUAL_REVIEW = "manual_review"


class CapExceeded(StrEnum):
    """Which cap a compensation would break; shown to the reviewing admin."""

    CUSTOMER_REFUND_CAP = "customer_refund_cap"
    CUSTOMER_BREACH_CAP = "customer_breach_cap"
    MERCHANT_MONTHLY_BUDGET = "merchant_monthly_budget"
    CUSTOMER_POINTS_CAP = "customer_points_cap"
    MERCHANT_MONTHLY_POINTS_BUDGET = "merchant_monthly_points_budget"


@dataclass(frozen=True)
class CompensationDecision:
    """The routing decision; the compensation travels with it so nothing is lost."""

    route: Route
    compensation: CompensationSet
    caps_exceeded: tuple[CapExceeded, ...] = ()


def _over(cap: int | None, used: int, adding: int) -> bool:
    return cap is not None and adding > 0 and used + adding > cap


def caps_exceeded(
    compensation: CompensationSet,
    limits: CompensationLimits,
    customer: CustomerUsage,
    merchant_spent_minor: int,
    *,
    new_breach: bool,
    voucher_value_minor: int = 0,
    merchant_spent_points: int = 0,
) -> tuple[CapExceeded, ...]:
    """Every cap that granting `compensation` now would break.

    Money is the refund plus `voucher_value_minor`, the value of the vouchers it grants.
    """
    money = compensation.refund_minor + voucher_value_minor
    points = compensation.points
    checks = (
        (
            CapExceeded.CUSTOMER_REFUND_CAP,
            limits.customer_refund_cap_minor,
            customer.refund_minor,
            money,
        ),
        (
            CapExceeded.MERCHANT_MONTHLY_BUDGET,
            limits.merchant_monthly_budget_minor,
            merchant_spent_minor,
            money,
        ),
        (CapExceeded.CUSTOMER_POINTS_CAP, limits.customer_points_cap, customer.points, points),
        (
            CapExceeded.MERCHANT_MONTHLY_POINTS_BUDGET,
            limits.merchant_monthly_points_budget,
            merchant_spent_points,
            points,
        ),
    )
    exceeded = [cap for cap, limit, used, adding in checks if _over(limit, used, adding)]
    if _over(limits.customer_breach_cap, customer.breaches, 1 if new_breach else 0):
        exceeded.append(CapExceeded.CUSTOMER_BREACH_CAP)
    return tuple(exceeded)


def route_compensation(
    compensation: CompensationSet,
    limits: CompensationLimits,
    customer: CustomerUsage,
    merchant_spent_minor: int,
    *,
    new_breach: bool,
    voucher_value_minor: int = 0,
    merchant_spent_points: int = 0,
) -> CompensationDecision:
    """Grant automatically within the caps, otherwise send to manual review (never drop).

    `new_breach` is False for a top-up of a breach already compensated: it adds
    money but does not count as another breach against the customer.
    """
    if compensation.is_empty:
        return CompensationDecision(Route.NOTHING_OWED, compensation)
    exceeded = caps_exceeded(
        compensation,
        limits,
        customer,
        merchant_spent_minor,
        new_breach=new_breach,
        voucher_value_minor=voucher_value_minor,
        merchant_spent_points=merchant_spent_points,
    )
    route = Route.MANUAL_REVIEW if exceeded else Route.GRANT
    return CompensationDecision(route, compensation, exceeded)
