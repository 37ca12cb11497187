"""Returns: reversing the points an order earned, in proportion to what was refunded.

The reversal is computed on the CUMULATIVE refund of the order, not return by return:

    target  = floor(order points x min(total refunded, order amount) / order amount)
    reverse = target - points already reversed for this order

so rounding never lets several partial returns reverse more than the order earned, and the
last return of a fully refunded order reverses exactly what is left. A refund above the order
amount (shipping, goodwill) is capped at the order amount. Points come back from the order's
own lot first, then pending lots, then available ones; the rest becomes debt (see ``lots``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from services.points.domain.errors import InvalidPurchaseError
from services.points.domain.lots import Clawback, Lot, claw_back


@dataclass(frozen=True)
class OrderEarning:
    """What one order earned and what its returns took back so far (one stored row).

    ``amount_minor`` and ``refunded_minor`` are in the order's own currency, so the
    proportion needs no exchange rate.
    """

    order_id: str
    points: int
    amount_minor: int
    refunded_minor: int = 0
    reversed_points: int = 0
    lot_id: str | None = None


@dataclass(frozen=True)
class ReturnOutcome:
    """The order after a return, the points reversed now, and where they came from."""

    order: OrderEarning
    points_reversed: int
    clawback: Clawback


def reversal_target(points: int, amount_minor: int, refunded_minor: int) -> int:
    """Points that a cumulative refund of ``refunded_minor`` takes back from the order."""
    if amount_minor <= 0:
        return 0
    refunded = min(max(refunded_minor, 0), amount_minor)
    return points * refunded // amount_minor


def register_return(order: OrderEarning, refunded_minor: int) -> tuple[OrderEarning, int]:
    """Record one more refund on the order; return the updated order and points to reverse."""
    if refunded_minor <= 0:
        raise InvalidPurchaseError(f"a return of order {order.order_id} must refund something")
    refunded_total = order.refunded_minor + refunded_minor
    target = reversal_target(order.points, order.amount_minor, refunded_total)
    to_reverse = max(target - order.reversed_points, 0)
    updated = replace(
        order, refunded_minor=refunded_total, reversed_points=order.reversed_points + to_reverse
    )
    return updated, to_reverse


def apply_return(
    order: OrderEarning,
    refunded_minor: int,
    lots: Sequence[Lot],
    now: datetime,
    debt: int = 0,
) -> ReturnOutcome:
    """Reverse the points a refund takes back, from the order's lot first; never drop any."""
    updated, to_reverse = register_return(order, refunded_minor)
    clawback = claw_back(lots, to_reverse, now, debt=debt, preferred_lot_id=order.lot_id)
    return ReturnOutcome(order=updated, points_reversed=to_reverse, clawback=clawback)
