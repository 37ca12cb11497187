"""Value segments and value at risk: alerts are ranked by what is at stake."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.alerts.domain.activity import ActivitySummary, apply_purchase
from services.alerts.domain.bgnbd import BgNbdParams
from services.alerts.domain.segments import (
    SegmentShares,
    ValueSegment,
    assign_value_segments,
    customer_value_at_risk_minor,
    value_at_risk_minor,
)

START = datetime(2024, 1, 6, 10, 0, tzinfo=UTC)
CDNOW_MODEL = BgNbdParams(
    r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=-9582.4, n_customers=2357
)


def test_top_fifth_is_a_next_three_tenths_b_rest_c() -> None:
    revenue = {f"customer-{i}": (i + 1) * 1_000 for i in range(10)}
    segments = assign_value_segments(revenue)
    assert Counter(segments.values()) == {ValueSegment.A: 2, ValueSegment.B: 3, ValueSegment.C: 5}
    assert segments["customer-9"] is ValueSegment.A, "the biggest spender must be in A"
    assert segments["customer-8"] is ValueSegment.A
    assert segments["customer-7"] is ValueSegment.B
    assert segments["customer-0"] is ValueSegment.C, "the smallest spender must be in C"


def test_a_lone_customer_is_an_a_customer() -> None:
    assert assign_value_segments({"only": 500}) == {"only": ValueSegment.A}
    assert assign_value_segments({}) == {}


def test_equal_revenue_never_splits_across_segments() -> None:
    revenue = {"big": 9_000, "tie-1": 5_000, "tie-2": 5_000, "small": 100, "smaller": 50}
    segments = assign_value_segments(revenue)
    assert segments["tie-1"] is segments["tie-2"] is ValueSegment.B, (
        "two customers who spent the same must share the better segment"
    )


def test_customers_without_net_revenue_are_c() -> None:
    segments = assign_value_segments({"returned-everything": 0, "buyer": 10})
    assert segments["returned-everything"] is ValueSegment.C


def test_shares_are_configurable() -> None:
    revenue = {i: 100 * (i + 1) for i in range(4)}
    segments = assign_value_segments(revenue, SegmentShares(a_percent=50, b_percent=50))
    assert [segments[i] for i in range(4)] == [ValueSegment.B] * 2 + [ValueSegment.A] * 2
    with pytest.raises(ValueError):
        SegmentShares(a_percent=60, b_percent=50)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.integers(), st.integers(min_value=0, max_value=10**9), max_size=60))
def test_a_better_customer_never_gets_a_worse_segment(revenue: dict[int, int]) -> None:
    segments = assign_value_segments(revenue)
    order = {ValueSegment.A: 0, ValueSegment.B: 1, ValueSegment.C: 2}
    assert set(segments) == set(revenue), "every customer gets a segment"
    for one in revenue:
        for other in revenue:
            if revenue[one] > revenue[other]:
                assert order[segments[one]] <= order[segments[other]], (
                    f"customer spending {revenue[one]} ranked below one spending {revenue[other]}"
                )


def test_value_at_risk_rounds_half_up_once_at_the_end() -> None:
    assert value_at_risk_minor(333, 2.0, 0.5) == 500, "333 x 1.5 = 499.5 -> 500"
    assert value_at_risk_minor(1_000, 3.0, 0.5) == 2_500
    assert value_at_risk_minor(1_000, 1.0, 4.0) == 0, "expecting more than usual loses nothing"


def weekly_shopper(visits: int, amount_minor: int = 6_000) -> ActivitySummary:
    summary = ActivitySummary()
    for visit in range(visits):
        moment = START + timedelta(days=7 * visit)
        summary = apply_purchase(summary, moment, amount_minor, "supermarket")
    return summary


def test_weekly_60_dollar_shopper_puts_about_770_dollars_at_risk_over_90_days() -> None:
    summary = weekly_shopper(visits=10)
    assert summary.last_purchase_at is not None
    now = summary.last_purchase_at + timedelta(days=24)
    at_risk = customer_value_at_risk_minor(summary, now)
    assert at_risk == 77_143, "without a model: 90/7 purchases x $60.00 = $771.43 at stake"


def test_model_subtracts_what_the_customer_is_still_expected_to_buy() -> None:
    summary = weekly_shopper(visits=10)
    assert summary.last_purchase_at is not None
    soon = summary.last_purchase_at + timedelta(days=3)
    much_later = summary.last_purchase_at + timedelta(days=60)
    fresh = customer_value_at_risk_minor(summary, soon, model=CDNOW_MODEL)
    stale = customer_value_at_risk_minor(summary, much_later, model=CDNOW_MODEL)
    upper_bound = customer_value_at_risk_minor(summary, much_later)
    assert fresh < stale <= upper_bound, (
        f"value at risk must grow with silence and never exceed the no-model bound: "
        f"{fresh}, {stale}, {upper_bound}"
    )


def test_one_time_buyer_has_no_rhythm_so_no_value_at_risk() -> None:
    once = weekly_shopper(visits=1)
    assert customer_value_at_risk_minor(once, START + timedelta(days=200), model=CDNOW_MODEL) == 0


def test_value_at_risk_refuses_a_naive_clock() -> None:
    with pytest.raises(ValueError):
        customer_value_at_risk_minor(weekly_shopper(3), datetime(2024, 6, 1))
