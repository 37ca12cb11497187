"""A live lot read for a purchase is restored from its row without its constructor: it must
be the very lot the constructor would build, and stay usable by the domain rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.points.accounts import repository
from services.points.accounts.repository import restored_lot
from services.points.domain.ledger import EntryKind
from services.points.domain.lots import Lot, claw_back

EARNED = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _row(source: str = "accrual") -> tuple[object, ...]:
    """Columns in the order of the live-lots query: customer first."""
    return (
        "kim",
        "0b7f3a52-4c1e-4f55-8d57-0e6c2b1f9a10",
        source,
        120,
        EARNED,
        EARNED + timedelta(days=14),
        EARNED + timedelta(days=379),
        "m-1",
        "order-1",
        20,
        10,
        0,
    )


def test_a_restored_lot_is_the_lot_its_constructor_builds() -> None:
    built = Lot(
        lot_id="0b7f3a52-4c1e-4f55-8d57-0e6c2b1f9a10",
        source=EntryKind.ACCRUAL,
        points=120,
        earned_at=EARNED,
        pending_until=EARNED + timedelta(days=14),
        expires_at=EARNED + timedelta(days=379),
        merchant_id="m-1",
        reference="order-1",
        redeemed=20,
        clawed_back=10,
    )
    restored = restored_lot(_row())
    assert repository._LOT_RESTORABLE, "Lot changed shape: every lot now pays its constructor"
    assert restored == built and hash(restored) == hash(built)
    assert restored.remaining == 90
    assert restored_lot(_row("credit")).source is EntryKind.CREDIT


def test_a_restored_lot_changes_like_any_other() -> None:
    restored = restored_lot(_row())
    taken = claw_back((restored,), 30, EARNED + timedelta(days=1))
    assert taken.lots[0].clawed_back == 40 and taken.debt == 0
    assert replace(restored, expired=90).remaining == 0
    assert restored.clawed_back == 10, "a frozen lot is never changed in place"
