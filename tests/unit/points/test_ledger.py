"""Ledger entries: signs per kind, balance and lifetime earned derived from entries."""

from __future__ import annotations

import pytest

from services.points.domain.errors import InvalidRuleError
from services.points.domain.ledger import (
    EntryKind,
    LedgerEntry,
    in_ledger_order,
    ledger_balance,
    lifetime_earned,
)
from tests.unit.points.builders import at


def entry(sequence: int, kind: EntryKind, points: int, reason: str | None = None) -> LedgerEntry:
    return LedgerEntry(
        sequence=sequence,
        customer_id="c-1",
        kind=kind,
        points=points,
        occurred_at=at(2025, 3, sequence),
        reference=f"ref-{sequence}",
        merchant_id="grocer",
        reason=reason,
    )


HISTORY = [
    entry(1, EntryKind.ACCRUAL, 100),
    entry(2, EntryKind.CREDIT, 20),
    entry(3, EntryKind.REDEMPTION, -50),
    entry(4, EntryKind.REDEMPTION_CANCEL, 50),
    entry(5, EntryKind.REVERSAL, -30),
    entry(6, EntryKind.ADJUSTMENT, -5, reason="ops: duplicate receipt, ticket 42"),
    entry(7, EntryKind.EXPIRY, -10),
]


def test_all_seven_kinds_exist() -> None:
    assert {kind.value for kind in EntryKind} == {
        "accrual",
        "reversal",
        "redemption",
        "redemption_cancel",
        "expiry",
        "adjustment",
        "credit",
    }


def test_balance_is_the_sum_of_entries() -> None:
    assert ledger_balance(HISTORY) == 75


def test_lifetime_earned_counts_accruals_and_credits_net_of_returns() -> None:
    assert lifetime_earned(HISTORY) == 90, "100 accrued + 20 credited - 30 reversed"


def test_entries_in_written_order() -> None:
    assert [e.sequence for e in in_ledger_order(reversed(HISTORY))] == list(range(1, 8))


@pytest.mark.parametrize(
    ("kind", "points"),
    [
        (EntryKind.ACCRUAL, -1),
        (EntryKind.CREDIT, -1),
        (EntryKind.REDEMPTION_CANCEL, -1),
        (EntryKind.REDEMPTION, 1),
        (EntryKind.REVERSAL, 1),
        (EntryKind.EXPIRY, 1),
    ],
)
def test_entry_sign_must_match_its_kind(kind: EntryKind, points: int) -> None:
    with pytest.raises(InvalidRuleError):
        entry(1, kind, points)


def test_adjustment_needs_a_reason_and_an_amount() -> None:
    with pytest.raises(InvalidRuleError):
        entry(1, EntryKind.ADJUSTMENT, 10)
    with pytest.raises(InvalidRuleError):
        entry(1, EntryKind.ADJUSTMENT, 0, reason="nothing")
