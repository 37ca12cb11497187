"""The append-only points ledger: entry kinds and what can be derived from the entries.

Every balance is derivable from the ledger: the balance is the sum of the signed ``points``
of a customer's entries. Entries that add points (accrual, credit, redemption_cancel) are
never negative; entries that take points away (reversal, redemption, expiry) are never
positive; an adjustment may go either way but is never zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.points.domain.errors import InvalidRuleError
from services.points.domain.moments import require_aware


class EntryKind(StrEnum):
    """Why points moved; stored as the ledger row's kind."""

    ACCRUAL = "accrual"
    REVERSAL = "reversal"
    REDEMPTION = "redemption"
    REDEMPTION_CANCEL = "redemption_cancel"
    EXPIRY = "expiry"
    ADJUSTMENT = "adjustment"
    CREDIT = "credit"


ADDING_KINDS = frozenset({EntryKind.ACCRUAL, EntryKind.CREDIT, EntryKind.REDEMPTION_CANCEL})
TAKING_KINDS = frozenset({EntryKind.REVERSAL, EntryKind.REDEMPTION, EntryKind.EXPIRY})
# Lifetime earned counts what purchases and credits brought in, net of returns; redemptions,
# expiry and admin adjustments do not change what the customer has earned over time.
LIFETIME_KINDS = frozenset({EntryKind.ACCRUAL, EntryKind.CREDIT, EntryKind.REVERSAL})


@dataclass(frozen=True)
class LedgerEntry:
    """One immutable ledger row.

    ``sequence`` orders a customer's entries (a database identity column); ``reference`` is
    the originating event id, order id or redemption id that makes the entry happen once;
    ``merchant_id`` attributes the points to a coalition partner (None for programme-wide
    credits and adjustments); ``reason`` is required for adjustments (who and why).
    """

    sequence: int
    customer_id: str
    kind: EntryKind
    points: int
    occurred_at: datetime
    reference: str
    merchant_id: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        require_aware(self.occurred_at, "ledger entry time")
        if self.kind in ADDING_KINDS and self.points < 0:
            raise InvalidRuleError(f"a {self.kind} entry cannot take points away")
        if self.kind in TAKING_KINDS and self.points > 0:
            raise InvalidRuleError(f"a {self.kind} entry cannot add points")
        if self.kind is EntryKind.ADJUSTMENT and (self.points == 0 or not self.reason):
            raise InvalidRuleError("an adjustment needs a non-zero amount and a reason")


def ledger_balance(entries: Iterable[LedgerEntry]) -> int:
    """Balance as the ledger states it: the sum of all signed entries."""
    return sum(entry.points for entry in entries)


def lifetime_earned(entries: Iterable[LedgerEntry]) -> int:
    """Points ever earned from purchases and credits, net of reversals for returns."""
    return sum(entry.points for entry in entries if entry.kind in LIFETIME_KINDS)


def in_ledger_order(entries: Iterable[LedgerEntry]) -> list[LedgerEntry]:
    """Entries in the order they were written."""
    return sorted(entries, key=lambda entry: entry.sequence)
