"""The console's SVG charts: pure markup from numbers, labels escaped."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

from console.charts import Series, bars_against_limits, grouped_columns
from console.programme import weekly_alerts


def test_columns_are_scaled_to_the_largest_value_and_parse_as_svg() -> None:
    svg = grouped_columns(
        "Alerts", ["w1", "w2"], [Series("opened", [10, 5], "a"), Series("back", [0, 2], "b")]
    )
    root = ElementTree.fromstring(svg)
    heights = [
        float(r.get("height", 0))
        for r in root.iter("{http://www.w3.org/2000/svg}rect")
        if r.get("class") == "a"
    ]
    assert heights[0] == 2 * heights[1] > 0


def test_labels_are_escaped() -> None:
    svg = bars_against_limits("Spend", [("<script>x</script>", 5.0, 10.0)], "EUR")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ElementTree.fromstring(svg)


def test_a_bar_over_its_limit_is_marked() -> None:
    svg = bars_against_limits("Spend", [("m-a", 12.0, 10.0), ("m-b", 3.0, None)], "EUR")
    assert svg.count('class="bar-over"') == 1 and svg.count('class="limit"') == 1


def test_weekly_alerts_count_openings_and_reactivations_by_week() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)  # a Sunday
    alerts: list[dict[str, Any]] = [
        {"opened_at": "2026-12-01T10:00:00Z", "closed_at": None},
        {"opened_at": "2026-11-30T10:00:00Z", "closed_at": "2026-12-02T09:00:00+00:00"},
        {"opened_at": "2026-11-27T10:00:00Z", "closed_at": None},
        {"opened_at": "2020-01-01T00:00:00Z", "closed_at": None},  # long before the chart
    ]
    labels, opened, back = weekly_alerts(alerts, now)
    assert len(labels) == 12 and labels[-1] == "30 Nov"
    assert opened.values[-1] == 2 and opened.values[-2] == 1 and sum(opened.values) == 3
    assert back.values[-1] == 1 and sum(back.values) == 1
