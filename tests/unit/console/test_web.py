"""What the console's pages share: reading answers defensively, money and time as text."""

from __future__ import annotations

from console.web import items_in, minor, when


def test_lists_are_found_bare_under_their_name_or_under_items() -> None:
    assert items_in([1, 2]) == [1, 2]
    assert items_in({"reviews": [1]}, "reviews") == [1]
    assert items_in({"items": [3], "next_cursor": "x"}, "reviews") == [3]  # paginated later
    assert items_in({"total": 4}, "reviews") == [] and items_in(None) == []


def test_minor_units_become_money_text_without_a_float() -> None:
    assert minor(10760, "EUR") == "107.60 EUR"
    assert minor(123456789012345678, "EUR") == "1,234,567,890,123,456.78 EUR"
    assert minor(None) == "\N{EN DASH}"


def test_times_are_shown_in_utc_whatever_offset_they_came_with() -> None:
    assert when("2026-12-06T14:30:00+02:00") == "2026-12-06 12:30 UTC"
    assert when("2026-12-06T12:30:00Z") == "2026-12-06 12:30 UTC"
    assert when("not a time") == "\N{EN DASH}" and when(None) == "\N{EN DASH}"
