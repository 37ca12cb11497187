"""Compensation caps: rolling 30 days per customer, monthly budget per merchant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.rewards.domain.errors import InvalidRuleError, NaiveDatetimeError
from services.rewards.domain.guarantee import CompensationSet
from services.rewards.domain.guarantee_limits import (
    CapExceeded,
    CompensationLimits,
    CustomerUsage,
    PastCompensation,
    Route,
    budget_month,
    customer_usage,
    merchant_month_spend,
    route_compensation,
)

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)
REFUND_50 = CompensationSet(tier=2, vouchers=frozenset({"fruit-plate"}), refund_minor=50_00)
VOUCHER_ONLY = CompensationSet(tier=1, vouchers=frozenset({"fruit-plate"}))


def past(
    days_ago: float, refund: int, *, customer: str = "c1", merchant: str = "m1", breach: str = "b"
) -> PastCompensation:
    return PastCompensation(customer, merchant, breach, NOW - timedelta(days=days_ago), refund)


def test_customer_usage_counts_only_the_rolling_30_days() -> None:
    history = [
        past(1, 10_00, breach="b1"),
        past(29.9, 20_00, breach="b2"),
        past(30, 40_00, breach="b3"),  # exactly 30 days ago: the window has moved past it
        past(45, 80_00, breach="b4"),
        past(2, 5_00, customer="someone-else", breach="b5"),
    ]
    usage = customer_usage(history, "c1", NOW)
    assert usage == CustomerUsage(refund_minor=30_00, breaches=2), (
        f"only c1's compensation of the last 30 days counts toward the cap, got {usage}"
    )


def test_top_ups_of_one_breach_count_as_one_breach() -> None:
    history = [past(3, 10_00, breach="order-1"), past(2, 15_00, breach="order-1")]
    usage = customer_usage(history, "c1", NOW)
    assert usage.breaches == 1, "a top-up is the same breach, not a second one"
    assert usage.refund_minor == 25_00, "but its money counts toward the refund cap"


def test_budget_month_is_the_calendar_month_and_spend_stays_inside_it() -> None:
    start, end = budget_month(NOW)
    assert (start, end) == (
        datetime(2025, 3, 1, tzinfo=UTC),
        datetime(2025, 4, 1, tzinfo=UTC),
    ), "the merchant's budget month of 15 March is March"
    december = budget_month(datetime(2025, 12, 31, 23, 59, tzinfo=UTC))
    assert december[1] == datetime(2026, 1, 1, tzinfo=UTC), "December's budget ends at New Year"
    history = [
        past(1, 10_00),
        past(14, 20_00),  # 1 March 12:00: inside
        past(15, 40_00),  # 28 February: previous month
        past(1, 80_00, merchant="m2"),
    ]
    assert merchant_month_spend(history, "m1", NOW) == 30_00, "only m1's March refunds count"


def test_budget_month_in_a_merchant_zone() -> None:
    shanghai = timezone(timedelta(hours=8))
    start, _ = budget_month(datetime(2025, 2, 28, 17, 0, tzinfo=UTC), shanghai)
    assert start == datetime(2025, 3, 1, tzinfo=shanghai), (
        "at 01:00 on 1 March in Shanghai the merchant's March budget has started"
    )


def test_within_all_caps_is_granted_automatically() -> None:
    limits = CompensationLimits(100_00, 3, 1_000_00)
    decision = route_compensation(
        REFUND_50, limits, CustomerUsage(40_00, 2), 900_00, new_breach=True
    )
    assert decision.route is Route.GRANT, f"50.00 within every cap must be granted: {decision}"
    assert decision.caps_exceeded == ()


@pytest.mark.parametrize(
    ("limits", "usage", "merchant_spent", "new_breach", "expected"),
    [
        (CompensationLimits(customer_refund_cap_minor=80_00), CustomerUsage(40_00, 0), 0, True,
         (CapExceeded.CUSTOMER_REFUND_CAP,)),
        (CompensationLimits(customer_breach_cap=2), CustomerUsage(0, 2), 0, True,
         (CapExceeded.CUSTOMER_BREACH_CAP,)),
        (CompensationLimits(merchant_monthly_budget_minor=1_000_00), CustomerUsage(), 960_00,
         True, (CapExceeded.MERCHANT_MONTHLY_BUDGET,)),
        (CompensationLimits(80_00, 1, 10_00), CustomerUsage(40_00, 1), 0, True,
         (CapExceeded.CUSTOMER_REFUND_CAP, CapExceeded.MERCHANT_MONTHLY_BUDGET,
          CapExceeded.CUSTOMER_BREACH_CAP)),
    ],
)  # fmt: skip
def test_over_a_cap_goes_to_manual_review_and_keeps_the_compensation(
    limits: CompensationLimits,
    usage: CustomerUsage,
    merchant_spent: int,
    new_breach: bool,
    expected: tuple[CapExceeded, ...],
) -> None:
    decision = route_compensation(REFUND_50, limits, usage, merchant_spent, new_breach=new_breach)
    assert decision.route is Route.MANUAL_REVIEW, "a compensation over a cap must go to review"
    assert decision.compensation == REFUND_50, "the reviewed compensation must not be dropped"
    assert set(decision.caps_exceeded) == set(expected), "the admin must see which caps broke"


def test_exactly_reaching_a_cap_is_still_granted() -> None:
    limits = CompensationLimits(customer_refund_cap_minor=90_00, customer_breach_cap=3)
    decision = route_compensation(REFUND_50, limits, CustomerUsage(40_00, 2), 0, new_breach=True)
    assert decision.route is Route.GRANT, "reaching the cap exactly is within the cap"


def test_top_up_does_not_count_as_another_breach() -> None:
    limits = CompensationLimits(customer_breach_cap=2)
    decision = route_compensation(REFUND_50, limits, CustomerUsage(0, 2), 0, new_breach=False)
    assert decision.route is Route.GRANT, "a top-up of a known breach is not a third breach"


def test_voucher_only_compensation_ignores_money_caps() -> None:
    limits = CompensationLimits(customer_refund_cap_minor=0, merchant_monthly_budget_minor=0)
    decision = route_compensation(VOUCHER_ONLY, limits, CustomerUsage(), 0, new_breach=True)
    assert decision.route is Route.GRANT, "a fruit plate spends no refund money"


def test_nothing_owed_is_routed_as_such() -> None:
    decision = route_compensation(
        CompensationSet(), CompensationLimits(customer_breach_cap=0), CustomerUsage(), 0,
        new_breach=True,
    )  # fmt: skip
    assert decision.route is Route.NOTHING_OWED, "a kept promise neither grants nor reviews"


def test_negative_caps_and_naive_times_are_refused() -> None:
    with pytest.raises(InvalidRuleError):
        CompensationLimits(customer_breach_cap=-1)
    with pytest.raises(NaiveDatetimeError):
        customer_usage([], "c1", datetime(2025, 3, 15, 12, 0))
    with pytest.raises(NaiveDatetimeError):
        PastCompensation("c1", "m1", "b", datetime(2025, 3, 15), 1)
