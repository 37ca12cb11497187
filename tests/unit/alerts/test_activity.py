"""Activity summary: what the alerts service remembers about each customer's buying."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.alerts.domain.activity import (
    ActivityError,
    ActivitySummary,
    apply_purchase,
    apply_return,
    with_history,
)

START = datetime(2024, 1, 6, 10, 0, tzinfo=UTC)


def bought(
    days: list[float], amount_minor: int = 6_000, merchant: str = "grocer"
) -> ActivitySummary:
    summary = ActivitySummary()
    for day in days:
        summary = apply_purchase(summary, START + timedelta(days=day), amount_minor, merchant)
    return summary


def test_first_purchase_opens_the_summary() -> None:
    summary = bought([0], amount_minor=1_250)
    assert summary.first_purchase_at == START == summary.last_purchase_at
    assert (summary.purchase_count, summary.visit_count, summary.spend_minor) == (1, 1, 1_250)
    assert summary.mean_gap_days is None, "one purchase cannot have a gap between purchases"
    assert summary.merchant_ids == frozenset({"grocer"})


def test_weekly_shopper_has_a_seven_day_rhythm_with_no_spread() -> None:
    summary = bought([0, 7, 14, 21, 28])
    assert summary.mean_gap_days == pytest.approx(7.0), "a weekly shopper's mean gap is 7 days"
    assert summary.gap_variance_days == pytest.approx(0.0), "a perfectly regular shopper"
    assert summary.gaps.count == 4
    assert summary.spend_minor == 30_000
    assert summary.average_order_value_minor == 6_000


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.6, max_value=400.0), min_size=2, max_size=40))
def test_running_gap_statistics_equal_those_of_the_full_history(gaps: list[float]) -> None:
    days = list(np.cumsum([0.0, *gaps]))
    summary = bought(days)
    assert summary.mean_gap_days == pytest.approx(np.mean(gaps), rel=1e-9), "mean gap drifted"
    assert summary.gap_variance_days == pytest.approx(np.var(gaps, ddof=1), rel=1e-6, abs=1e-6), (
        "Welford variance differs from the variance over the stored history"
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=2_000), min_size=1, max_size=25, unique=True),
    st.randoms(use_true_random=False),
)
def test_any_arrival_order_keeps_counts_spend_and_dates_right(
    days: list[int], shuffler: random.Random
) -> None:
    arrival = list(days)
    shuffler.shuffle(arrival)
    incremental = bought([float(d) for d in arrival], amount_minor=999)
    # The service recomputes visits from the kept purchase times when one arrives late.
    summary = with_history(incremental, [START + timedelta(days=d) for d in arrival])
    assert summary.first_purchase_at == START + timedelta(days=min(days))
    assert summary.last_purchase_at == START + timedelta(days=max(days))
    assert summary.purchase_count == len(days) == summary.visit_count
    in_order = bought([float(d) for d in sorted(days)], amount_minor=999)
    assert summary.gaps.count == in_order.gaps.count == len(days) - 1
    assert summary.gaps.mean_days == pytest.approx(in_order.gaps.mean_days)
    assert summary.gaps.sum_squared_deviations == pytest.approx(
        in_order.gaps.sum_squared_deviations, abs=1e-6
    ), "arrival order changed the rhythm"
    assert summary.spend_minor == 999 * len(days)
    assert summary.gaps.count <= len(days) - 1, "more gaps recorded than exist"
    if summary.mean_gap_days is not None:
        assert 1.0 <= summary.mean_gap_days <= max(days) - min(days), "impossible mean gap"


def test_purchase_older_than_the_first_adds_an_exact_gap() -> None:
    summary = bought([10, 17, 24, 3])
    assert summary.first_purchase_at == START + timedelta(days=3)
    assert summary.gaps.count == 3
    assert summary.mean_gap_days == pytest.approx(7.0), "gap 3->10 is a true gap of 7 days"
    assert summary.late_purchase_count == 1


def test_late_purchase_inside_the_known_span_is_placed_exactly_with_history() -> None:
    in_order = bought([0, 14, 28])
    with_late = apply_purchase(in_order, START + timedelta(days=7), 6_000, "grocer")
    assert with_late.gaps == in_order.gaps, "without history no gap may be invented"
    assert with_late.purchase_count == 4 and with_late.visit_count == 3, (
        "without history a purchase inside the span is not counted as a visit"
    )
    assert with_late.spend_minor == 24_000
    assert with_late.late_purchase_count == 1
    times = [START + timedelta(days=d) for d in (0, 14, 28, 7)]
    exact = with_history(with_late, times)
    assert exact.visit_count == 4 and exact.gaps.count == 3
    assert exact.mean_gap_days == pytest.approx(28 / 3)


def test_issue_15_jan_1_20_10_10_is_three_visits() -> None:
    arrival = [0, 19, 9, 9]
    summary = bought([float(d) for d in arrival])
    exact = with_history(summary, [START + timedelta(days=d) for d in arrival])
    assert (exact.purchase_count, exact.visit_count, exact.gaps.count) == (4, 3, 2)
    assert exact.mean_gap_days == pytest.approx(9.5)


def test_a_partial_history_leaves_the_summary_as_it_was() -> None:
    summary = bought([0, 14, 28, 7])
    assert with_history(summary, [START, START + timedelta(days=7)]) == summary


def test_second_receipt_on_the_same_visit_is_not_a_new_visit() -> None:
    summary = bought([0, 7, 7.1, 14, 14.05])
    assert summary.purchase_count == 5, "every receipt is a purchase"
    assert summary.visit_count == 3, "two receipts within hours are one shopping visit"
    assert summary.mean_gap_days == pytest.approx(7.0, abs=0.1), "forgotten-milk trip skews rhythm"


def test_late_receipt_close_to_a_known_visit_is_not_a_new_visit() -> None:
    summary = bought([5, 12, 4.9, 11.95])
    assert summary.visit_count == 2
    assert summary.purchase_count == 4
    assert summary.gaps.count == 1


def test_merchants_visited_accumulate_across_the_coalition() -> None:
    summary = apply_purchase(ActivitySummary(), START, 100, "bank")
    summary = apply_purchase(summary, START + timedelta(days=2), 100, "department-store")
    summary = apply_purchase(summary, START + timedelta(days=4), 100, "bank")
    assert summary.merchant_ids == frozenset({"bank", "department-store"})


def test_returns_reduce_spend_but_never_below_zero() -> None:
    summary = bought([0, 7], amount_minor=5_000)
    assert apply_return(summary, 3_000).spend_minor == 7_000
    emptied = apply_return(summary, 25_000)
    assert emptied.spend_minor == 0, "returning more than was spent cannot create negative spend"
    assert emptied.purchase_count == 2, "a return does not undo the visit"


def test_average_order_value_rounds_half_up_to_a_minor_unit() -> None:
    summary = apply_purchase(ActivitySummary(), START, 500, "cafe")
    summary = apply_purchase(summary, START + timedelta(days=1), 501, "cafe")
    assert summary.average_order_value_minor == 501, "500.5 minor units rounds half up to 501"
    assert ActivitySummary().average_order_value_minor == 0


def test_naive_purchase_time_is_rejected() -> None:
    with pytest.raises(ActivityError, match="time zone"):
        apply_purchase(ActivitySummary(), datetime(2024, 1, 1), 100, "cafe")


@pytest.mark.parametrize("amount", [-1, 1.5, True])
def test_amount_that_is_not_a_whole_non_negative_minor_unit_is_rejected(amount: object) -> None:
    # Wrong types on purpose (a float, a bool): the rule refuses them at run time too.
    with pytest.raises(ActivityError):
        apply_purchase(ActivitySummary(), START, amount, "cafe")  # type: ignore[arg-type]
    with pytest.raises(ActivityError):
        apply_return(ActivitySummary(), amount)  # type: ignore[arg-type]
