"""`add_months` clamps to the end of a shorter month, for every date and any month count."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import TzInfo

from services.points.domain.moments import add_months, on_utc


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


_ZONES = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=5, minutes=30)),
        timezone(-timedelta(hours=3)),
        ZoneInfo("Europe/Paris"),
        ZoneInfo("America/New_York"),
    ]
)


@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2100, 12, 31), timezones=_ZONES
    ),
    fold=st.sampled_from([0, 1]),
    months=st.sampled_from([-24, -12, -1, 1, 11, 12, 13, 36]),
)
def test_the_cached_shift_gives_the_calendar_rules_moment_itself(
    moment: datetime, fold: int, months: int
) -> None:
    """Per (day, months) `add_months` adds a cached number of days: the result must be the
    calendar rule's to the last attribute (wall time, zone object, fold), on a first call
    and on the cached ones, in fixed-offset zones and in zones with daylight saving."""
    moment = moment.replace(fold=fold)
    expected = _reference(moment, months)
    for _ in range(2):  # the second call takes the cached shift
        shifted = add_months(moment, months)
        assert shifted.isoformat() == expected.isoformat()
        assert (shifted.tzinfo, shifted.fold) == (expected.tzinfo, expected.fold)
        assert shifted == expected


# The zones a contract's parsed time or a stored one can carry, and some it cannot.
_ZERO_OFFSETS = [UTC, timezone(timedelta(0)), TzInfo(0), ZoneInfo("UTC")]
_OTHER_ZONES = [
    timezone(timedelta(hours=5, minutes=30)),
    TzInfo(-3 * 3600),
    ZoneInfo("Europe/London"),  # at offset 0 half the year: not for good
    ZoneInfo("Africa/Abidjan"),  # at offset 0 since 1912, but not from the first
]


@given(
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 12, 31)),
    zones=st.lists(st.sampled_from(_ZERO_OFFSETS + _OTHER_ZONES), min_size=1, max_size=4),
)
def test_on_utc_is_the_same_instant_and_wall_time_on_utc_for_a_fixed_zero_offset(
    moment: datetime, zones: list[tzinfo]
) -> None:
    """`on_utc` moves only a moment at a fixed zero offset onto `UTC` (the same instant,
    the same wall-clock time: the same JSON and database value), whatever zone it saw
    before (it keeps the last zero-offset zone's epoch); any other moment is left as is."""
    for zone in zones:
        local = moment.replace(tzinfo=zone)
        moved = on_utc(local)
        assert moved == local
        if any(zone is z for z in _ZERO_OFFSETS):
            assert moved.tzinfo is UTC
            assert moved.replace(tzinfo=None) == moment
        else:
            assert moved is local


def test_on_utc_leaves_a_naive_moment_alone() -> None:
    naive = datetime(2026, 3, 1, 12)
    assert on_utc(naive) is naive
