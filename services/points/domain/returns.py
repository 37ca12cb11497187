"""Returns: taking back the points of what came back, line by line when the return says which.

An order is kept as its receipt lines, each with the weight it earned with (its category or
SKU multiplier at the purchase, 0 for an excluded line such as a gift card); the part of
the amount no line covers is one more line of weight 1. What came back is tracked per line
as a returned face value (order-currency minor units, exact fractions), never above the
line's face value. A return moves value onto lines in two ways:

* the lines it names (SKU and quantity) at the price the ORDER recorded, never at a price
  the return claims, and never more units than the line had left;
* whatever it refunds beyond the named lines (or all of it, when it names none) is spread
  over what is still unreturned, in proportion to each line's unreturned value. With no
  lines named this is exactly the old proportional rule: several partial refunds of an
  order take back points in proportion to the cumulative refund.

The points a return takes back are computed on the CUMULATIVE state, not return by return:

    target  = floor(order points x weighted returned value / weighted order value)
    reverse = target - points already reversed for this order

so rounding never lets several returns reverse more than the order earned, a line never
gives back more than it earned (an excluded line earned nothing and gives back nothing),
and the last return of a fully returned order reverses exactly what is left. Points come
back from the order's own lot first, then pending lots, then available ones; the rest
becomes debt (see ``lots``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction

from services.points.domain.errors import InvalidPurchaseError
from services.points.domain.lots import Clawback, Lot, claw_back

UNITEMISED = "*unitemised*"  # the part of an order its receipt lines do not cover


@dataclass(frozen=True, slots=True)
class EarningLine:
    """One receipt line as it earned: price in order-currency minor units, earning weight."""

    sku: str
    quantity: int
    unit_price_minor: int
    weight: Fraction = Fraction(1)

    @property
    def face_minor(self) -> int:
        return self.quantity * self.unit_price_minor


@dataclass(frozen=True)
class ReturnedLine:
    """A line a return names: which SKU and how many units came back."""

    sku: str
    quantity: int


def earning_lines(amount_minor: int, lines: tuple[EarningLine, ...]) -> tuple[EarningLine, ...]:
    """An order's lines; an order kept without lines is one line of weight 1."""
    return lines or (EarningLine(UNITEMISED, 1, amount_minor),)


def returned_face(
    amount_minor: int,
    refunded_minor: int,
    lines: tuple[EarningLine, ...],
    returned: tuple[Fraction, ...],
) -> tuple[Fraction, ...]:
    """Returned value per line (order-currency minor units, exact): as kept, or the
    refunds so far spread proportionally over the lines."""
    if returned:
        return returned
    kept = earning_lines(amount_minor, lines)
    face = sum(line.face_minor for line in kept)
    refunded = min(max(refunded_minor, 0), face)
    if face == 0:
        return tuple(Fraction(0) for _ in kept)
    return tuple(Fraction(line.face_minor * refunded, face) for line in kept)


def is_fully_returned(
    amount_minor: int,
    refunded_minor: int,
    lines: tuple[EarningLine, ...],
    returned: tuple[Fraction, ...],
) -> bool:
    """Every unit of an order came back (an order of value 0 never does).

    Takes only what a stored order row holds about its refunds, so a read that never
    loads what the order earned can still judge it exactly as the consumer does.
    """
    kept = earning_lines(amount_minor, lines)
    if sum(line.face_minor for line in kept) == 0:
        return False
    face = returned_face(amount_minor, refunded_minor, lines, returned)
    return all(r >= line.face_minor for line, r in zip(kept, face, strict=True))


@dataclass(frozen=True, slots=True)
class OrderEarning:
    """What one order earned and what its returns took back so far (one stored row).

    ``amount_minor`` and ``refunded_minor`` are in the order's own currency, so the
    proportion needs no exchange rate. ``lines`` empty means one unweighted line covering
    the whole amount (orders recorded before lines were kept); ``returned`` empty means
    the refunds so far spread proportionally over the lines (the same, for such orders).
    """

    order_id: str
    points: int
    amount_minor: int
    refunded_minor: int = 0
    reversed_points: int = 0
    lot_id: str | None = None
    lines: tuple[EarningLine, ...] = ()
    returned: tuple[Fraction, ...] = ()

    def earning_lines(self) -> tuple[EarningLine, ...]:
        """The order's lines; an order kept without lines is one line of weight 1."""
        return self.lines or (EarningLine(UNITEMISED, 1, self.amount_minor),)

    def returned_face(self) -> tuple[Fraction, ...]:
        """Returned value per line (order-currency minor units, exact)."""
        return returned_face(self.amount_minor, self.refunded_minor, self.lines, self.returned)

    @property
    def fully_returned(self) -> bool:
        """Every unit of the order came back (an order of value 0 never does)."""
        return is_fully_returned(self.amount_minor, self.refunded_minor, self.lines, self.returned)


@dataclass(frozen=True)
class ReturnOutcome:
    """The order after a return, the points reversed now, and where they came from."""

    order: OrderEarning
    points_reversed: int
    clawback: Clawback


def reversal_target(points: int, amount_minor: int, refunded_minor: int) -> int:
    """Points that a cumulative refund of ``refunded_minor`` takes back from an unlined order."""
    if amount_minor <= 0:
        return 0
    refunded = min(max(refunded_minor, 0), amount_minor)
    return points * refunded // amount_minor


def weighted_target(points: int, lines: Sequence[EarningLine], returned: Sequence[Fraction]) -> int:
    """Points that the returned value per line takes back: the lines' share of what was earned."""
    total = sum((line.weight * line.face_minor for line in lines), Fraction(0))
    if total == 0:
        return 0
    back = sum((line.weight * r for line, r in zip(lines, returned, strict=True)), Fraction(0))
    return math.floor(points * min(back, total) / total)


def _take_named(
    lines: Sequence[EarningLine], returned: list[Fraction], items: Sequence[ReturnedLine]
) -> Fraction:
    """Move the named units onto their lines (at the order's prices); the value matched."""
    matched = Fraction(0)
    for item in items:
        wanted = Fraction(item.quantity)
        for index, line in enumerate(lines):
            if wanted <= 0:
                break
            if line.sku != item.sku or line.unit_price_minor <= 0:
                continue
            units_left = (line.face_minor - returned[index]) / line.unit_price_minor
            taken = min(wanted, units_left)
            returned[index] += taken * line.unit_price_minor
            matched += taken * line.unit_price_minor
            wanted -= taken
    return matched


def _spread(lines: Sequence[EarningLine], returned: list[Fraction], value: Fraction) -> None:
    """Spread a refund over what is still unreturned, in proportion to it."""
    room = [line.face_minor - r for line, r in zip(lines, returned, strict=True)]
    total_room = sum(room, Fraction(0))
    if value <= 0 or total_room <= 0:
        return
    share = min(value, total_room) / total_room
    for index, left in enumerate(room):
        returned[index] += left * share


def register_return(
    order: OrderEarning, refunded_minor: int, items: Sequence[ReturnedLine] = ()
) -> tuple[OrderEarning, int]:
    """Record one more return on the order; return the updated order and points to reverse."""
    if refunded_minor <= 0:
        raise InvalidPurchaseError(f"a return of order {order.order_id} must refund something")
    lines = order.earning_lines()
    returned = list(order.returned_face())
    matched = _take_named(lines, returned, items)
    _spread(lines, returned, refunded_minor - matched)
    target = weighted_target(order.points, lines, returned)
    to_reverse = max(target - order.reversed_points, 0)
    updated = replace(
        order,
        refunded_minor=order.refunded_minor + refunded_minor,
        reversed_points=order.reversed_points + to_reverse,
        returned=tuple(returned),
    )
    return updated, to_reverse


def apply_return(
    order: OrderEarning,
    refunded_minor: int,
    lots: Sequence[Lot],
    now: datetime,
    debt: int = 0,
    items: Sequence[ReturnedLine] = (),
) -> ReturnOutcome:
    """Reverse the points a return takes back, from the order's lot first; never drop any."""
    updated, to_reverse = register_return(order, refunded_minor, items)
    clawback = claw_back(lots, to_reverse, now, debt=debt, preferred_lot_id=order.lot_id)
    return ReturnOutcome(order=updated, points_reversed=to_reverse, clawback=clawback)
