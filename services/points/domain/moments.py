"""Calendar helpers shared by the points rules.

Every moment in the domain is timezone-aware: a naive datetime would mean different instants
on different servers, and a replay must give the same result anywhere.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TypeVar

from services.points.domain.errors import NaiveDatetimeError

_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February: not leap


def require_aware(moment: datetime, what: str) -> datetime:
    """Return ``moment`` unchanged, or refuse it when it has no timezone."""
    if moment.utcoffset() is None:  # None without a tzinfo, or from a tzinfo that has no offset
        raise NaiveDatetimeError(f"{what} must be timezone-aware, got {moment.isoformat()}")
    return moment


def on_utc(moment: datetime) -> datetime:
    """The same instant on the standard library's `UTC` when ``moment`` is at a fixed
    offset of zero (a contract's parsed `Z`: pydantic's own tzinfo object), else ``moment``.

    Two aware datetimes of different tzinfo objects compare through `utcoffset` on both
    (~0.37 µs), of the same object directly (~0.02 µs); balances compare lot dates with
    `now`, which is on `UTC`. A tzinfo that gives an offset for no datetime in particular
    (`utcoffset(None)`) has one offset for good (`timezone`, pydantic's; a `ZoneInfo` gives
    one only for a zone without transitions): then the wall-clock difference from its
    epoch is the elapsed time, and `UTC`'s epoch plus it the same instant (~0.07 µs).
    Equal, hashed alike, and written alike (`Z`) to JSON and to the database.
    """
    global _zero_offset
    zone = moment.tzinfo
    if zone is UTC:
        return moment
    known, epoch = _zero_offset
    if zone is not known:
        if zone is None or zone.utcoffset(None) != _NO_OFFSET:
            return moment
        epoch = datetime(1970, 1, 1, tzinfo=zone)
        _zero_offset = (zone, epoch)
    return _UTC_EPOCH + (moment - epoch)


_NO_OFFSET = timedelta(0)
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The last zero-offset tzinfo seen (the contracts' parser shares one) and its epoch.
_zero_offset: tuple[tzinfo, datetime] = (UTC, _UTC_EPOCH)


def add_months(moment: datetime, months: int) -> datetime:
    """Same wall-clock time ``months`` later (or earlier when negative).

    The day is clamped to the end of a shorter month, so 29 February plus 12 months is
    28 February: points never live longer than the promised number of months.

    Every earning purchase asks (its lot's expiry), for a handful of distinct days: the
    shift in days is computed once per (day, months) by the calendar rule
    (`_on_calendar`) and added, a third of the cost of rebuilding the date each time.
    Adding days keeps the wall-clock time and the time zone, exactly as replacing the
    date does; only an ambiguous wall time's `fold`, which an addition resets, takes the
    calendar path itself.
    """
    if moment.fold:
        return _on_calendar(moment, months)
    key = (moment.toordinal(), months)
    shift = _SHIFTS.get(key)
    if shift is None:
        if len(_SHIFTS) >= _MAX_SHIFTS:
            _SHIFTS.clear()
        day = date.fromordinal(key[0])
        shift = _SHIFTS[key] = _on_calendar(day, months) - day
    return moment + shift


_SHIFTS: dict[tuple[int, int], timedelta] = {}
_MAX_SHIFTS = 100_000  # a few years of days x the month counts in use; cleared beyond
_D = TypeVar("_D", date, datetime)


def _on_calendar(moment: _D, months: int) -> _D:
    """`add_months` by the calendar: the same day (clamped) ``months`` later."""
    month_index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(month_index, 12)
    month += 1
    day = moment.day
    if day > 28:  # only the end of a month can fall past a shorter month's last day
        last_day = _DAYS_IN_MONTH[month] + (month == 2 and calendar.isleap(year))
        day = min(day, last_day)
    return moment.replace(year=year, month=month, day=day)
