"""A purchase's lot is built without `Lot`'s own checks (`accrual_lot` makes them first):
it must be the very lot the checked constructor builds, and still refuse what it refused."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.points.domain.errors import InvalidRuleError, NaiveDatetimeError
from services.points.domain.ledger import EntryKind
from services.points.domain.lots import Lot, accrual_lot
from services.points.domain.moments import add_months

ZONES = [UTC, ZoneInfo("Europe/Paris"), ZoneInfo("Asia/Kolkata"), ZoneInfo("America/St_Johns")]


@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2090, 1, 1),
        timezones=st.sampled_from(ZONES),
    ),
    points=st.integers(1, 10**12),
    window_days=st.integers(0, 90),
    months=st.integers(1, 60),
)
def test_a_purchase_lot_is_the_lot_the_checked_constructor_builds(
    moment: datetime, points: int, window_days: int, months: int
) -> None:
    window = timedelta(days=window_days)
    lot = accrual_lot("lot-1", points, moment, "grocer", "order-1", window, months)
    checked = Lot(
        lot_id="lot-1",
        source=EntryKind.ACCRUAL,
        points=points,
        earned_at=moment,
        pending_until=moment + window,
        expires_at=add_months(moment + window, months),
        merchant_id="grocer",
        reference="order-1",
    )
    assert lot == checked
    assert [getattr(lot, f.name) for f in dataclasses.fields(Lot)] == [
        getattr(checked, f.name) for f in dataclasses.fields(Lot)
    ]
    assert hash(lot) == hash(checked)
    assert dataclasses.replace(lot, redeemed=1).remaining == points - 1


def test_a_purchase_lot_still_refuses_a_naive_time_and_no_points() -> None:
    with pytest.raises(NaiveDatetimeError):
        accrual_lot("lot-1", 5, datetime(2026, 3, 1, 12), "grocer", "order-1")
    with pytest.raises(InvalidRuleError):
        accrual_lot("lot-1", 0, datetime(2026, 3, 1, 12, tzinfo=UTC), "grocer", "order-1")


def test_a_changed_purchase_lot_goes_through_the_checks_again() -> None:
    lot = accrual_lot("lot-1", 5, datetime(2026, 3, 1, 12, tzinfo=UTC), "grocer", "order-1")
    with pytest.raises(NaiveDatetimeError):
        dataclasses.replace(lot, expires_at=datetime(2027, 3, 1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        lot.points = 6  # type: ignore[misc]
