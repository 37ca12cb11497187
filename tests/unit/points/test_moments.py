"""`add_months` clamps to the end of a shorter month, for every date and any month count."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.points.domain.moments import add_months


def _reference(moment: datetime, months: int) -> datetime:
    year, month = divmod(moment.year * 12 + moment.month - 1 + months, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last_day))


@given(
    moment=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(UTC)
    ),
    months=st.integers(min_value=-1200, max_value=1200),
)
def test_same_wall_clock_time_months_later_clamped_to_the_month_end(
    moment: datetime, months: int
) -> None:
    assert add_months(moment, months) == _reference(moment, months)


def test_leap_day_plus_a_year_is_the_last_of_february() -> None:
    leap = datetime(2028, 2, 29, 10, tzinfo=UTC)
    assert add_months(leap, 12) == datetime(2029, 2, 28, 10, tzinfo=UTC)
    assert add_months(leap, 48) == leap + timedelta(days=4 * 365 + 1)
    assert add_months(datetime(2027, 1, 31, tzinfo=UTC), 1) == datetime(2027, 2, 28, tzinfo=UTC)
