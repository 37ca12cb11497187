"""Returns naming their lines: what those lines earned comes back, at the order's prices."""

from __future__ import annotations

from fractions import Fraction

from services.points.domain.returns import (
    EarningLine,
    OrderEarning,
    ReturnedLine,
    register_return,
    reversal_target,
)

GIFT = EarningLine("gift", 1, 50_00, Fraction(0))
SHIRT = EarningLine("shirt", 2, 10_00, Fraction(1))


def gift_and_shirts() -> OrderEarning:
    return OrderEarning("o", points=20, amount_minor=70_00, lines=(GIFT, SHIRT))


def test_a_returned_gift_card_takes_back_nothing_and_a_plain_refund_is_proportional() -> None:
    _, named = register_return(gift_and_shirts(), 50_00, [ReturnedLine("gift", 1)])
    assert named == 0, "an excluded line earned nothing, so gives back nothing"
    _, plain = register_return(gift_and_shirts(), 50_00)
    assert plain == 14, "without lines, in proportion to the refund: 20 x 50/70"


def test_named_units_are_capped_at_what_was_bought_and_priced_by_the_order() -> None:
    order, first = register_return(gift_and_shirts(), 10_00, [ReturnedLine("shirt", 1)])
    assert first == 10, "one of two shirts: half of what the shirts earned"
    order, second = register_return(order, 10_00, [ReturnedLine("shirt", 9)])
    assert second == 10, "only one shirt was left to return"
    assert order.reversed_points == 20 and not order.fully_returned, "the gift card is still out"
    order, last = register_return(order, 50_00, [ReturnedLine("gift", 1)])
    assert last == 0 and order.fully_returned


def test_a_refund_beyond_the_named_lines_takes_back_what_the_rest_earned() -> None:
    order, taken = register_return(gift_and_shirts(), 70_00, [ReturnedLine("gift", 1)])
    assert taken == 20, "70.00 back for a 50.00 gift card: the shirts came back too"
    assert order.fully_returned
    _, unknown = register_return(gift_and_shirts(), 20_00, [ReturnedLine("no-such-sku", 1)])
    assert unknown == 5, "an unknown line matches nothing: the refund is spread, 20 x 20/70"


def test_orders_kept_without_lines_behave_as_before() -> None:
    plain = OrderEarning("o", points=200, amount_minor=200_00)
    refunds = [50_00, 30_01, 150_00]
    reversed_points = []
    for refund in refunds:
        plain, points = register_return(plain, refund)
        reversed_points.append(points)
    assert reversed_points == [50, 30, 120]
    assert reversal_target(200, 200_00, 80_01) == 80
    assert plain.fully_returned
