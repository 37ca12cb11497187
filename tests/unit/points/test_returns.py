"""Returns: proportional, cumulative reversal; pending first; debt instead of dropping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.points.domain.balances import balance_at
from services.points.domain.errors import InvalidPurchaseError
from services.points.domain.lots import LotDraw, accrual_lot, credit_lot, redeem_points
from services.points.domain.returns import (
    OrderEarning,
    apply_return,
    register_return,
    reversal_target,
)
from tests.unit.points.builders import at


def order(
    points: int = 100, amount_minor: int = 100_00, lot_id: str | None = "own"
) -> OrderEarning:
    return OrderEarning("order-1", points=points, amount_minor=amount_minor, lot_id=lot_id)


def reversals(earning: OrderEarning, *refunds: int) -> list[int]:
    reversed_points = []
    for refund in refunds:
        earning, points = register_return(earning, refund)
        reversed_points.append(points)
    return reversed_points


class TestProportionalReversal:
    def test_reversal_in_proportion_to_the_refund(self) -> None:
        assert reversal_target(points=100, amount_minor=80_00, refunded_minor=20_00) == 25

    def test_two_partial_returns_reverse_their_shares(self) -> None:
        assert reversals(order(), 30_00, 70_00) == [30, 70]

    def test_cumulative_rounding_reaches_exactly_what_the_order_earned(self) -> None:
        assert reversals(order(points=10, amount_minor=3_00), 1_00, 1_00, 1_00) == [3, 3, 4], (
            "three thirds of a 10-point order must reverse 10 in total, not 3 x 3"
        )

    def test_refunds_beyond_the_order_amount_never_reverse_more(self) -> None:
        assert reversals(order(), 80_00, 80_00, 10_00) == [80, 20, 0]

    def test_order_that_earned_nothing_reverses_nothing(self) -> None:
        assert reversals(order(points=0), 50_00) == [0]

    def test_return_must_refund_something(self) -> None:
        with pytest.raises(InvalidPurchaseError):
            register_return(order(), 0)


@given(
    points=st.integers(min_value=0, max_value=10_000),
    amount=st.integers(min_value=1, max_value=1_000_000),
    refunds=st.lists(st.integers(min_value=1, max_value=1_000_000), min_size=1, max_size=6),
)
def test_partial_returns_never_reverse_more_than_earned(
    points: int, amount: int, refunds: list[int]
) -> None:
    total = sum(reversals(order(points, amount), *refunds))
    assert total <= points, "returns reversed more points than the order earned"
    assert total == points * min(sum(refunds), amount) // amount, (
        "cumulative reversal must equal the share of the total refunded"
    )


class TestWhereReversedPointsComeFrom:
    def test_pending_points_of_the_order_go_first(self) -> None:
        lots = (
            accrual_lot("own", 100, at(2025, 3, 1), "grocer", "order-1"),
            credit_lot("credit", 50, at(2025, 2, 1), "r"),
        )
        outcome = apply_return(order(), 40_00, lots, at(2025, 3, 5))
        assert outcome.points_reversed == 40
        assert outcome.clawback.draws == (LotDraw("own", 40),), "the order's pending lot first"
        assert outcome.clawback.debt == 0

    def test_spent_points_make_the_balance_negative(self) -> None:
        lots = (accrual_lot("own", 100, at(2025, 1, 1), "grocer", "order-1"),)
        spent = redeem_points(lots, 90, at(2025, 2, 1))
        outcome = apply_return(order(), 100_00, spent.lots, at(2025, 2, 5))
        assert outcome.clawback.points == 10 and outcome.clawback.debt == 90, (
            "the 90 points already spent must become debt, not vanish"
        )
        balance = balance_at(outcome.clawback.lots, at(2025, 2, 5), outcome.clawback.debt)
        assert balance.available == -90, "the customer's balance must show -90"

    def test_other_pending_points_then_available_ones_cover_spent_order_points(self) -> None:
        lots = (
            accrual_lot("own", 100, at(2025, 1, 1), "grocer", "order-1"),
            credit_lot("credit", 50, at(2025, 2, 1), "r"),
            accrual_lot("newer", 30, at(2025, 2, 20), "grocer", "order-2"),
        )
        spent = redeem_points(lots, 100, at(2025, 1, 20))
        outcome = apply_return(order(), 60_00, spent.lots, at(2025, 2, 25))
        assert outcome.clawback.draws == (LotDraw("newer", 30), LotDraw("credit", 30)), (
            "with the order's points spent, pending points go first, then available"
        )

    def test_later_return_adds_to_existing_debt(self) -> None:
        earning = order()
        first = apply_return(earning, 50_00, (), at(2025, 2, 5), debt=5)
        second = apply_return(first.order, 50_00, (), at(2025, 2, 6), first.clawback.debt)
        assert second.clawback.debt == 105, "5 owed before + 50 + 50 reversed with no points"
