"""Who matters most, and how much is at stake when they go quiet.

Value segments. 20% of customers bring 80% of profit, so lapse alerts are ranked for CRM staff
by value. Within one merchant, customers are ranked by net revenue: the top share is A
(default 20% of customers), the next share B (default 30%), the rest C. Sizes are counted with
integer arithmetic, rounding up (10 customers: 2 A, 3 B, 5 C; 1 customer: A). Two customers
with the same revenue always share a segment, the better one, so a boundary tie can make a
segment slightly larger than its share; customers with no net revenue are always C.

Value at risk. The money the merchant stands to lose over a horizon (default 90 days):

    value_at_risk = average_order_value x max(0, purchases_if_retained - purchases_still_expected)

* purchases_if_retained = horizon_days / the customer's own mean gap between visits: what they
  would have bought had they kept their rhythm. Without a measured gap (a single visit) it is 0:
  one purchase is no evidence of a rhythm, so nothing is counted as lost.
* purchases_still_expected = the BG/NBD conditional expectation over the same horizon given the
  customer's history; 0 without a model, which makes the figure an upper bound.

Money is integer minor units; the product is rounded half up to a whole minor unit once, at the
end, and never negative.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import TypeVar

from services.alerts.domain.activity import ActivitySummary, require_aware
from services.alerts.domain.bgnbd import BgNbdParams, expected_purchases, summary_to_rfm

CustomerKey = TypeVar("CustomerKey", bound=Hashable)

DEFAULT_RISK_HORIZON = timedelta(days=90)


class ValueSegment(StrEnum):
    A = "A"
    B = "B"
    C = "C"


@dataclass(frozen=True, slots=True)
class SegmentShares:
    """Share of a merchant's customers in segments A and B, in whole percent; C is the rest."""

    a_percent: int = 20
    b_percent: int = 30

    def __post_init__(self) -> None:
        if self.a_percent < 0 or self.b_percent < 0 or self.a_percent + self.b_percent > 100:
            raise ValueError("segment shares must be >= 0 and add up to at most 100 percent")

    def sizes(self, customer_count: int) -> tuple[int, int]:
        """How many customers fall in A and in A or B, rounding up."""
        in_a = -(-customer_count * self.a_percent // 100)
        in_a_or_b = -(-customer_count * (self.a_percent + self.b_percent) // 100)
        return in_a, in_a_or_b


def assign_value_segments(
    revenue_minor_by_customer: Mapping[CustomerKey, int],
    shares: SegmentShares = SegmentShares(),
) -> dict[CustomerKey, ValueSegment]:
    """A, B or C for each customer of one merchant, by net revenue rank (see module docstring)."""
    ranked = sorted(revenue_minor_by_customer.items(), key=lambda item: item[1], reverse=True)
    in_a, in_a_or_b = shares.sizes(len(ranked))
    segments: dict[CustomerKey, ValueSegment] = {}
    previous: tuple[int, ValueSegment] | None = None
    for position, (customer, revenue) in enumerate(ranked):
        if revenue <= 0:
            segment = ValueSegment.C
        elif previous is not None and previous[0] == revenue:
            segment = previous[1]  # a tie never splits across segments
        else:
            segment = _segment_at(position, in_a, in_a_or_b)
        segments[customer] = segment
        previous = (revenue, segment)
    return segments


def value_at_risk_minor(
    average_order_value_minor: int,
    purchases_if_retained: float,
    purchases_still_expected: float,
) -> int:
    """Average order value x purchases expected to be lost, rounded half up to a minor unit."""
    if average_order_value_minor < 0:
        raise ValueError("an average order value cannot be negative")
    lost = max(0.0, purchases_if_retained - purchases_still_expected)
    exact = Decimal(average_order_value_minor) * Decimal(lost)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def customer_value_at_risk_minor(
    summary: ActivitySummary,
    now: datetime,
    *,
    horizon: timedelta = DEFAULT_RISK_HORIZON,
    model: BgNbdParams | None = None,
) -> int:
    """Value at risk of one customer at `now` over `horizon` (formula in the module docstring)."""
    require_aware(now, "evaluation time")
    if horizon <= timedelta(0):
        raise ValueError("the risk horizon must be a positive duration")
    mean_gap = summary.mean_gap_days
    if mean_gap is None or mean_gap <= 0:
        return 0
    if_retained = (horizon / timedelta(days=1)) / mean_gap
    return value_at_risk_minor(
        summary.average_order_value_minor,
        if_retained,
        _purchases_still_expected(summary, now, horizon, model),
    )


def _purchases_still_expected(
    summary: ActivitySummary, now: datetime, horizon: timedelta, model: BgNbdParams | None
) -> float:
    first, last = summary.first_purchase_at, summary.last_purchase_at
    if model is None or first is None or last is None:
        return 0.0
    rfm = summary_to_rfm(first, last, summary.visit_count, now, unit_days=model.unit_days)
    return float(expected_purchases(model, horizon / model.time_unit, *rfm))


def _segment_at(position: int, in_a: int, in_a_or_b: int) -> ValueSegment:
    if position < in_a:
        return ValueSegment.A
    if position < in_a_or_b:
        return ValueSegment.B
    return ValueSegment.C


@dataclass(frozen=True, slots=True)
class SegmentCutoffs:
    """Lowest revenue still in A and in B at one merchant when the ranks were last computed."""

    merchant_id: str
    a_min_revenue_minor: int | None
    b_min_revenue_minor: int | None
    customers: int
    computed_at: datetime


def cutoffs_from_revenues(
    merchant_id: str,
    revenues: Sequence[int],
    computed_at: datetime,
    shares: SegmentShares = SegmentShares(),
) -> SegmentCutoffs:
    """The lowest revenue in A and in B once `revenues` are ranked by the domain rule."""
    segments = assign_value_segments(dict(enumerate(revenues)), shares)
    lowest: dict[ValueSegment, int] = {}
    for index, segment in segments.items():
        revenue = revenues[index]
        if segment is not ValueSegment.C and revenue < lowest.get(segment, revenue + 1):
            lowest[segment] = revenue
    return SegmentCutoffs(
        merchant_id,
        lowest.get(ValueSegment.A),
        lowest.get(ValueSegment.B),
        len(revenues),
        computed_at,
    )


def segment_from_cutoffs(cutoffs: SegmentCutoffs | None, revenue_minor: int) -> ValueSegment:
    """A, B or C for a customer's current revenue at the merchant (C without revenue)."""
    if cutoffs is None or revenue_minor <= 0:
        return ValueSegment.C
    if cutoffs.a_min_revenue_minor is not None and revenue_minor >= cutoffs.a_min_revenue_minor:
        return ValueSegment.A
    if cutoffs.b_min_revenue_minor is not None and revenue_minor >= cutoffs.b_min_revenue_minor:
        return ValueSegment.B
    return ValueSegment.C
