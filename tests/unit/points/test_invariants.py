"""The invariant check: sound books pass, every kind of broken books is reported."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from services.points.domain.balances import balance_at
from services.points.domain.invariants import (
    InvariantViolation,
    RedemptionRecord,
    ViolationKind,
    check_account,
)
from services.points.domain.ledger import EntryKind, LedgerEntry, ledger_balance
from services.points.domain.lots import LotDraw
from tests.unit.points.account_book import AccountBook
from tests.unit.points.builders import at


def kinds(book: AccountBook) -> set[ViolationKind]:
    found = check_account(book.customer_id, book.entries, book.lots, book.debt, book.redemptions)
    return {violation.kind for violation in found}


def sound_book() -> AccountBook:
    book = AccountBook(now=at(2025, 1, 1))
    book.buy(100_00)
    book.credit(20)
    book.wait(20)
    assert book.redeem(70), "the customer should be able to redeem 70 of 120 available"
    return book


def test_sound_books_have_no_violation() -> None:
    book = sound_book()
    assert check_account("customer-1", book.entries, book.lots, 0, book.redemptions) == ()


def test_lot_changed_behind_the_ledger_is_reported() -> None:
    book = sound_book()
    book.lots = (replace(book.lots[0], redeemed=book.lots[0].redeemed + 5), *book.lots[1:])
    assert kinds(book) == {
        ViolationKind.BALANCE_MISMATCH,
        ViolationKind.REDEMPTION_ALLOCATION_MISMATCH,
    }, "5 points missing from a lot must show as a mismatch with ledger and allocations"


def test_redemption_that_overdrew_the_balance_is_reported() -> None:
    book = sound_book()
    book.entries.append(
        LedgerEntry(99, "customer-1", EntryKind.REDEMPTION, -100, book.now, "bad-redemption")
    )
    found = check_account("customer-1", book.entries, book.lots, 0)
    assert (
        InvariantViolation(
            "customer-1",
            ViolationKind.NEGATIVE_AFTER_REDEMPTION,
            "redemption bad-redemption left the balance at -50",
        )
        in found
    ), "a redemption that took the balance below zero must be reported"


def test_redemption_from_pending_points_is_reported() -> None:
    book = AccountBook(now=at(2025, 1, 1))
    book.buy(100_00)
    lot = book.lots[0]
    book.lots = (replace(lot, redeemed=30),)
    book.redemptions.append(RedemptionRecord("r-1", book.now, 30, (LotDraw(lot.lot_id, 30),)))
    book.write(EntryKind.REDEMPTION, -30, "r-1")
    assert kinds(book) == {ViolationKind.REDEMPTION_FROM_UNAVAILABLE_LOT}, (
        "taking points still in the return window must be reported"
    )


def test_allocation_not_matching_the_redemption_is_reported() -> None:
    book = sound_book()
    book.redemptions[0] = replace(book.redemptions[0], points=71)
    assert ViolationKind.REDEMPTION_ALLOCATION_MISMATCH in kinds(book)


def test_draw_from_unknown_lot_is_reported() -> None:
    book = sound_book()
    ghost = RedemptionRecord("r-ghost", book.now, 1, (LotDraw("no-such-lot", 1),))
    book.redemptions.append(ghost)
    assert ViolationKind.REDEMPTION_ALLOCATION_MISMATCH in kinds(book)


def test_overdrawn_lot_and_negative_debt_are_reported() -> None:
    book = sound_book()
    lot = book.lots[0]
    book.lots = (replace(lot, clawed_back=lot.points), *book.lots[1:])
    book.debt = -1
    found = kinds(book)
    assert ViolationKind.LOT_OVERDRAWN in found, "a lot that gave more than it had is broken"
    assert ViolationKind.NEGATIVE_DEBT in found


def test_lot_dates_out_of_order_are_reported() -> None:
    book = sound_book()
    book.lots = (replace(book.lots[0], expires_at=at(2024, 1, 1)), *book.lots[1:])
    assert ViolationKind.LOT_DATES_OUT_OF_ORDER in kinds(book)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(min_value=1, max_value=300_00)),
        st.tuples(st.just("return"), st.integers(min_value=1, max_value=200_00)),
        st.tuples(st.just("redeem"), st.integers(min_value=1, max_value=400)),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=9)),
        st.tuples(st.just("credit"), st.integers(min_value=1, max_value=100)),
        st.tuples(st.just("bonus"), st.integers(min_value=1, max_value=100)),
        st.tuples(st.just("deduct"), st.integers(min_value=1, max_value=100)),
        st.tuples(st.just("wait"), st.sampled_from([1, 7, 15, 40, 200, 400])),
    ),
    max_size=25,
)


def run(book: AccountBook, operation: str, amount: int) -> None:
    actions = {
        "buy": book.buy,
        "return": lambda refund: book.give_back(refund, refund),
        "redeem": book.redeem,
        "cancel": book.cancel,
        "credit": book.credit,
        "bonus": lambda points: book.credit(points, EntryKind.ADJUSTMENT),
        "deduct": book.deduct,
        "wait": book.wait,
    }
    actions[operation](amount)


@settings(max_examples=150, deadline=None)
@given(operations=operations)
def test_books_balance_after_any_sequence_of_operations(
    operations: list[tuple[str, int]],
) -> None:
    book = AccountBook(now=at(2025, 1, 1))
    for operation, amount in operations:
        run(book, operation, amount)
        book.wait(0)  # the expiry job catches up, so the ledger matches the live balance
        assert (
            check_account(book.customer_id, book.entries, book.lots, book.debt, book.redemptions)
            == ()
        ), f"books broken after {operation} {amount}"
        balance = balance_at(book.lots, book.now, book.debt)
        assert balance.total == ledger_balance(book.entries), (
            f"balance shown {balance.total} differs from the ledger after {operation} {amount}"
        )
        assert balance.available >= -book.debt, "available points went below the debt"
