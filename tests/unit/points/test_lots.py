"""Lots: pending, available and expiring points; redemption, cancellation, expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.points.domain.balances import DatedPoints, balance_at, liability_by_merchant
from services.points.domain.earning import EarningRuleSet
from services.points.domain.errors import (
    InsufficientPointsError,
    InvalidRuleError,
    NaiveDatetimeError,
)
from services.points.domain.ledger import EntryKind
from services.points.domain.lots import (
    Lot,
    LotDraw,
    accrual_lot,
    cancel_redemption,
    claw_back,
    credit_lot,
    expire_due_lots,
    redeem_points,
    settle_debt,
)
from tests.unit.points.builders import at


def purchase_lot(lot_id: str, points: int, day: int, month: int = 3, year: int = 2025) -> Lot:
    return accrual_lot(lot_id, points, at(year, month, day), "grocer", f"order-{lot_id}")


def by_id(lots: tuple[Lot, ...], lot_id: str) -> Lot:
    return next(lot for lot in lots if lot.lot_id == lot_id)


class TestLotDates:
    def test_purchase_points_pending_for_14_days_then_valid_12_months(self) -> None:
        lot = purchase_lot("a", 100, day=10, month=1)
        assert lot.pending_until == at(2025, 1, 24), "points should free up 14 days later"
        assert lot.expires_at == at(2026, 1, 24), "points expire 12 months after freeing up"

    def test_merchant_return_window_from_the_rules(self) -> None:
        rules = EarningRuleSet(merchant_return_window_days={"furniture": 30})
        lot = accrual_lot(
            "a", 10, at(2025, 1, 1), "furniture", "o-1", rules.return_window_for("furniture")
        )
        assert lot.pending_until == at(2025, 1, 31)

    def test_credit_available_at_once(self) -> None:
        lot = credit_lot("c", 50, at(2025, 3, 1), reference="reward-9")
        assert lot.is_available(at(2025, 3, 1)), "a reward credit is available immediately"
        assert lot.expires_at == at(2026, 3, 1)

    def test_leap_day_points_do_not_outlive_twelve_months(self) -> None:
        lot = credit_lot("c", 50, at(2024, 2, 29), reference="reward-9")
        assert lot.expires_at == at(2025, 2, 28)

    def test_naive_moment_refused(self) -> None:
        with pytest.raises(NaiveDatetimeError):
            credit_lot("c", 1, at(2025, 1, 1).replace(tzinfo=None), reference="r")

    def test_zero_point_lot_refused(self) -> None:
        with pytest.raises(InvalidRuleError):
            purchase_lot("a", 0, day=1)

    def test_redemption_does_not_create_a_lot(self) -> None:
        with pytest.raises(InvalidRuleError):
            credit_lot("c", 1, at(2025, 1, 1), reference="r", source=EntryKind.REDEMPTION)


class TestBalance:
    LOTS = (
        purchase_lot("fresh", 100, day=1),  # pending until 15 March 2025
        credit_lot("old-credit", 50, at(2024, 3, 20), reference="r-1"),  # expires 20 March
        credit_lot("gone", 70, at(2024, 3, 1), reference="r-2"),  # expired 1 March
        credit_lot("later", 30, at(2025, 1, 1), reference="r-3"),
    )

    def test_available_pending_and_expiring_soon(self) -> None:
        balance = balance_at(self.LOTS, at(2025, 3, 5))
        assert balance.available == 80, "old credit 50 + later credit 30 are available"
        assert balance.pending == 100, "the fresh purchase is still pending"
        assert balance.pending_releases == (DatedPoints(at(2025, 3, 15), 100),)
        assert balance.expiring_soon == 50, "only the old credit expires in the next 30 days"
        assert balance.expiring_dates == (DatedPoints(at(2025, 3, 20), 50),)

    def test_expired_points_never_shown_even_before_the_expiry_job(self) -> None:
        gone = by_id(self.LOTS, "gone")
        assert gone.remaining == 70 and gone.expired == 0, "the expiry job has not run"
        assert balance_at(self.LOTS, at(2025, 3, 5)).total == 180, "the 70 expired must not count"

    def test_pending_points_become_available_after_the_return_window(self) -> None:
        assert balance_at(self.LOTS, at(2025, 3, 15)).available == 180

    def test_debt_makes_the_balance_negative(self) -> None:
        balance = balance_at((), at(2025, 3, 5), debt=40)
        assert balance.available == -40, "a customer who owes 40 points must see -40"


class TestRedemption:
    def test_oldest_expiring_points_are_spent_first(self) -> None:
        lots = (
            credit_lot("late", 100, at(2025, 2, 1), reference="r-1"),
            credit_lot("early", 30, at(2024, 6, 1), reference="r-2"),
        )
        movement = redeem_points(lots, 50, at(2025, 3, 5))
        assert movement.draws == (LotDraw("early", 30), LotDraw("late", 20)), (
            "the lot expiring first must be used up first"
        )
        assert by_id(movement.lots, "early").remaining == 0
        assert by_id(movement.lots, "late").redeemed == 20

    def test_pending_points_cannot_be_redeemed(self) -> None:
        lots = (purchase_lot("fresh", 100, day=1), credit_lot("c", 10, at(2025, 3, 1), "r"))
        with pytest.raises(InsufficientPointsError) as refused:
            redeem_points(lots, 20, at(2025, 3, 5))
        assert refused.value.available == 10, "only the 10 credited points were available"
        assert refused.value.requested == 20

    def test_expired_points_cannot_be_redeemed(self) -> None:
        lots = (credit_lot("old", 100, at(2024, 1, 1), "r"),)
        with pytest.raises(InsufficientPointsError):
            redeem_points(lots, 1, at(2025, 3, 5))

    def test_debt_is_repaid_before_spending(self) -> None:
        lots = (credit_lot("c", 100, at(2025, 3, 1), "r"),)
        with pytest.raises(InsufficientPointsError):
            redeem_points(lots, 80, at(2025, 3, 5), debt=30)

    def test_non_positive_redemption_refused(self) -> None:
        with pytest.raises(InvalidRuleError):
            redeem_points((), 0, at(2025, 3, 5))


class TestCancellation:
    LOTS = (
        credit_lot("a", 30, at(2024, 6, 1), "r-1"),
        credit_lot("b", 100, at(2025, 2, 1), "r-2"),
    )

    def test_points_go_back_to_the_same_lots_with_original_expiry(self) -> None:
        redeemed = redeem_points(self.LOTS, 50, at(2025, 3, 5))
        restored = cancel_redemption(redeemed.lots, redeemed.draws)
        assert restored == self.LOTS, "cancelling must restore every lot exactly"
        assert by_id(restored, "a").expires_at == at(2025, 6, 1), "original expiry kept"

    def test_points_restored_after_their_expiry_come_back_expired(self) -> None:
        redeemed = redeem_points(self.LOTS, 30, at(2025, 3, 5))
        restored = cancel_redemption(redeemed.lots, redeemed.draws)
        later = at(2025, 7, 1)
        assert balance_at(restored, later).available == 100, "lot a expired on 1 June"
        assert expire_due_lots(restored, later).draws == (LotDraw("a", 30),)

    def test_cancelling_what_was_never_redeemed_is_refused(self) -> None:
        with pytest.raises(InvalidRuleError):
            cancel_redemption(self.LOTS, (LotDraw("a", 5),))


class TestExpiry:
    def test_expires_only_the_lots_due(self) -> None:
        lots = (
            credit_lot("due", 40, at(2024, 3, 1), "r-1"),
            credit_lot("not-yet", 60, at(2024, 6, 1), "r-2"),
        )
        movement = expire_due_lots(lots, at(2025, 3, 5))
        assert movement.draws == (LotDraw("due", 40),) and movement.points == 40
        assert by_id(movement.lots, "due").expired == 40
        assert expire_due_lots(movement.lots, at(2025, 3, 5)).draws == (), (
            "running the expiry again must expire nothing more"
        )

    def test_only_what_is_left_expires(self) -> None:
        lots = redeem_points((credit_lot("a", 40, at(2024, 3, 1), "r"),), 15, at(2024, 4, 1)).lots
        assert expire_due_lots(lots, at(2025, 3, 1)).points == 25

    def test_thirteen_month_jump_expires_pending_and_available_alike(self) -> None:
        lots = (purchase_lot("p", 100, day=1), credit_lot("c", 10, at(2025, 3, 1), "r"))
        jump = at(2025, 3, 1) + timedelta(days=31 * 13)
        assert expire_due_lots(lots, jump).points == 110
        assert balance_at(lots, jump).total == 0


class TestClawBack:
    def test_preferred_then_pending_then_available_then_debt(self) -> None:
        lots = (
            credit_lot("available", 20, at(2025, 2, 1), "r"),
            purchase_lot("other-pending", 30, day=2),
            purchase_lot("own", 10, day=3),
        )
        clawback = claw_back(lots, 70, at(2025, 3, 5), preferred_lot_id="own")
        assert clawback.draws == (
            LotDraw("own", 10),
            LotDraw("other-pending", 30),
            LotDraw("available", 20),
        ), "the order's own lot first, then pending, then available points"
        assert clawback.debt == 10, "the 10 points not covered must become debt"

    def test_new_points_pay_off_debt(self) -> None:
        lots = (credit_lot("c", 25, at(2025, 3, 5), "r"),)
        settled = settle_debt(lots, 40, at(2025, 3, 5))
        assert settled.points == 25 and settled.debt == 15
        assert balance_at(settled.lots, at(2025, 3, 5), settled.debt).available == -15


def test_liability_per_merchant() -> None:
    lots = (
        accrual_lot("a", 100, at(2025, 3, 1), "grocer", "o-1"),
        accrual_lot("b", 40, at(2025, 1, 1), "grocer", "o-2"),
        accrual_lot("c", 10, at(2025, 1, 1), "bookshop", "o-3"),
        credit_lot("d", 5, at(2025, 1, 1), "r"),
        credit_lot("gone", 500, at(2023, 1, 1), "r-old"),
    )
    report = {
        row.merchant_id: (row.available, row.pending)
        for row in liability_by_merchant(lots, at(2025, 3, 5))
    }
    assert report == {"bookshop": (10, 0), "grocer": (40, 100), None: (5, 0)}, (
        "liability must split available and pending per merchant and skip expired points"
    )
