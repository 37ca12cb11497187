"""The books must balance: checks behind ``/v1/admin/invariants``.

For one customer, given what the database holds (ledger entries, lots, debt and optionally the
per-lot allocation of each redemption), report every way the books disagree:

* the ledger balance (sum of entries) equals the lots' remaining points minus the debt;
* no lot gave away more than it had, and its dates are in order;
* no redemption left the running ledger balance negative;
* when allocations are given: each redemption took exactly its points, only from lots that
  were available at that moment, and each lot's ``redeemed`` counter matches the allocations
  of the redemptions not cancelled.

An empty result means the account is sound. Checks never raise on bad data: they report it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.points.domain.ledger import EntryKind, LedgerEntry, in_ledger_order, ledger_balance
from services.points.domain.lots import Lot, LotDraw
from services.points.domain.moments import require_aware


class ViolationKind(StrEnum):
    """Stable codes of what can be wrong with an account."""

    BALANCE_MISMATCH = "balance_mismatch"
    NEGATIVE_DEBT = "negative_debt"
    LOT_OVERDRAWN = "lot_overdrawn"
    LOT_DATES_OUT_OF_ORDER = "lot_dates_out_of_order"
    NEGATIVE_AFTER_REDEMPTION = "negative_after_redemption"
    REDEMPTION_ALLOCATION_MISMATCH = "redemption_allocation_mismatch"
    REDEMPTION_FROM_UNAVAILABLE_LOT = "redemption_from_unavailable_lot"


@dataclass(frozen=True)
class InvariantViolation:
    """One broken rule, in words an operator can act on."""

    customer_id: str
    kind: ViolationKind
    detail: str


@dataclass(frozen=True)
class RedemptionRecord:
    """A stored redemption and the lots it drew from."""

    redemption_id: str
    occurred_at: datetime
    points: int
    draws: tuple[LotDraw, ...]
    cancelled: bool = False

    def __post_init__(self) -> None:
        require_aware(self.occurred_at, "redemption time")


def check_account(
    customer_id: str,
    entries: Iterable[LedgerEntry],
    lots: Sequence[Lot],
    debt: int = 0,
    redemptions: Sequence[RedemptionRecord] | None = None,
) -> tuple[InvariantViolation, ...]:
    """Every invariant violation of one customer's account (empty when the books balance)."""
    ordered = in_ledger_order(entries)
    found = [
        *_balance_violations(ordered, lots, debt),
        *_lot_violations(lots),
        *_running_balance_violations(ordered),
    ]
    if redemptions is not None:
        found += _allocation_violations(lots, redemptions)
        found += _availability_violations(lots, redemptions)
    return tuple(InvariantViolation(customer_id, kind, detail) for kind, detail in found)


_Found = list[tuple[ViolationKind, str]]


def _balance_violations(entries: Sequence[LedgerEntry], lots: Sequence[Lot], debt: int) -> _Found:
    found: _Found = []
    if debt < 0:
        found.append((ViolationKind.NEGATIVE_DEBT, f"debt is {debt}"))
    in_ledger = ledger_balance(entries)
    in_lots = sum(lot.remaining for lot in lots) - debt
    if in_ledger != in_lots:
        found.append(
            (
                ViolationKind.BALANCE_MISMATCH,
                f"ledger entries sum to {in_ledger} but lots minus debt hold {in_lots}",
            )
        )
    return found


def _lot_violations(lots: Sequence[Lot]) -> _Found:
    found: _Found = []
    for lot in lots:
        counters = (lot.redeemed, lot.clawed_back, lot.expired)
        if lot.points <= 0 or min(counters) < 0 or lot.remaining < 0:
            found.append(
                (
                    ViolationKind.LOT_OVERDRAWN,
                    f"lot {lot.lot_id} has {lot.points} points but gave "
                    f"redeemed={lot.redeemed} clawed_back={lot.clawed_back} expired={lot.expired}",
                )
            )
        if not lot.earned_at <= lot.pending_until <= lot.expires_at:
            found.append(
                (ViolationKind.LOT_DATES_OUT_OF_ORDER, f"lot {lot.lot_id} dates out of order")
            )
    return found


def _running_balance_violations(entries: Sequence[LedgerEntry]) -> _Found:
    found: _Found = []
    running = 0
    for entry in entries:
        running += entry.points
        if entry.kind is EntryKind.REDEMPTION and running < 0:
            found.append(
                (
                    ViolationKind.NEGATIVE_AFTER_REDEMPTION,
                    f"redemption {entry.reference} left the balance at {running}",
                )
            )
    return found


def _allocation_violations(lots: Sequence[Lot], redemptions: Sequence[RedemptionRecord]) -> _Found:
    found: _Found = []
    drawn: dict[str, int] = {}
    for redemption in redemptions:
        total = sum(draw.points for draw in redemption.draws)
        if total != redemption.points:
            found.append(
                (
                    ViolationKind.REDEMPTION_ALLOCATION_MISMATCH,
                    f"redemption {redemption.redemption_id} of {redemption.points} points "
                    f"drew {total} from lots",
                )
            )
        for draw in () if redemption.cancelled else redemption.draws:
            drawn[draw.lot_id] = drawn.get(draw.lot_id, 0) + draw.points
    for lot in lots:
        if drawn.pop(lot.lot_id, 0) != lot.redeemed:
            found.append(
                (
                    ViolationKind.REDEMPTION_ALLOCATION_MISMATCH,
                    f"lot {lot.lot_id} says {lot.redeemed} redeemed, allocations disagree",
                )
            )
    found += [
        (ViolationKind.REDEMPTION_ALLOCATION_MISMATCH, f"redemptions drew from unknown lot {lot}")
        for lot in drawn
    ]
    return found


def _availability_violations(
    lots: Sequence[Lot], redemptions: Sequence[RedemptionRecord]
) -> _Found:
    by_id = {lot.lot_id: lot for lot in lots}
    found: _Found = []
    for redemption in redemptions:
        for draw in redemption.draws:
            lot = by_id.get(draw.lot_id)
            if lot is not None and not lot.is_available(redemption.occurred_at):
                found.append(
                    (
                        ViolationKind.REDEMPTION_FROM_UNAVAILABLE_LOT,
                        f"redemption {redemption.redemption_id} took points from lot "
                        f"{lot.lot_id}, which was pending or expired at that time",
                    )
                )
    return found
