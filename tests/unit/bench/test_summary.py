"""The `make bench` summary: one row per measurement, ratios to the same run's raw rates."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.report import write_results
from bench.summary import (
    Row,
    Target,
    baselines_of,
    results_document,
    section_figures,
    summary_rows,
    summary_table,
)


def foundation_figures(**changes: Any) -> dict[str, Any]:
    """As bench.foundation returns them: flat, prefixed by the section's name."""
    figures: dict[str, Any] = {
        "foundation.events": 5000,
        "foundation.raw_insert_form": "unnest",
        "foundation.raw_consume_eps": 100_000,
        "foundation.raw_consume_steady_eps": 110_000,
        "foundation.raw_consume_first_batch_s": 0.03,
        "foundation.raw_insert_eps": 50_000,
        "foundation.raw_insert_unnest_eps": 50_000,
        "foundation.raw_insert_executemany_eps": 25_000,
        "foundation.runtime_noop_eps": 20_000,
        "foundation.runtime_noop_steady_eps": 31_000,
        "foundation.runtime_one_row_eps": 12_500,
        "foundation.runtime_one_row_steady_eps": 13_000,
        "foundation.runtime_one_row_startup_s": 5.42,
        "foundation.runtime_one_row_startup_broker": "tansu",
        "foundation.runtime_one_row_startup.group_join_s": 5.1,
        "foundation.target_noop_steady_eps_pass": True,
        "foundation.target_one_row_steady_eps_pass": False,
    }
    figures.update({f"foundation.{key}": value for key, value in changes.items()})
    return figures


def points_figures() -> dict[str, Any]:
    return {
        "points.accrual_committed_eps": 9_000,
        "points.accrual_committed_steady_eps": 9_500,
        "points.accrual_relayed_eps": 8_000,
        "points.accrual_relayed_steady_eps": 10_400,
        "points.accrual_messages_relayed": 5_200,
        "points.target_accrual_steady_eps_pass": True,
        "points.target_accrual_stretch_steady_eps_pass": False,
        "points.balance_rate_rps": 1_000,
        "points.balance_achieved_rps": 999.2,
        "points.balance_errors": 0,
        "points.balance_p50_ms": 2.5,
        "points.balance_p95_ms": 6.0,
        "points.balance_p99_ms": 11.25,
        "points.balance_max_ms": 30.0,
        "points.target_balance_p99_pass": True,
    }


def alerts_figures() -> dict[str, Any]:
    """As bench.alerts returns them: one dict under the section's name."""
    scan = {"customers": 100_000, "due": 1_000, "scans": 3, "median_s": 0.5, "alerts_raised": 3000}
    return {
        "alerts": {
            "scans": [
                scan,
                {**scan, "customers": 1_000_000, "due": 0, "median_s": 0.01},
                {**scan, "customers": 1_000_000, "median_s": 0.8},
            ],
            "fit": [{"label": "exact times", "customers": 100_000, "seconds": 4.0}],
            "scan_growth_1m_vs_100k": 1.6,
            "target_scan_independent_of_customers": "PASS",
        }
    }


def rewards_figures() -> dict[str, Any]:
    """As bench.rewards returns them: bare keys."""
    return {
        "incidents": 5000,
        "compensated": 5000,
        "publish_rate_rps": 1_000,
        "publish_achieved_rps": 998.5,
        "throughput_eps": 1_250.0,
        "latency_p50_ms": 40.0,
        "latency_p99_ms": 120.0,
        "kept_up": True,
        "target_compensation_p99_pass": True,
        "consumer_startup_s": 5.3,
        "consumer_startup_broker": "kafka",
    }


def all_sections() -> dict[str, dict[str, Any]]:
    returned = {
        "foundation": foundation_figures(),
        "alerts": alerts_figures(),
        "points": points_figures(),
        "rewards": rewards_figures(),
    }
    return {name: section_figures(name, figures) for name, figures in returned.items()}


def row(rows: list[Row], section: str, starts: str) -> Row:
    found = [r for r in rows if r.section == section and r.measurement.startswith(starts)]
    assert len(found) == 1, f"expected one {section} row '{starts}...', found {found}"
    return found[0]


def test_every_section_shape_becomes_one_flat_dict_without_its_prefix() -> None:
    assert section_figures("points", {"points.balance_p99_ms": 3.0}) == {"balance_p99_ms": 3.0}
    assert section_figures("alerts", {"alerts": {"scans": []}}) == {"scans": []}
    assert section_figures("rewards", {"throughput_eps": 1.0}) == {"throughput_eps": 1.0}


def test_rates_are_compared_with_the_raw_broker_and_postgres_rates_of_the_same_run() -> None:
    rows = summary_rows(all_sections())
    one_row = row(rows, "foundation", "runtime, one-row")
    assert one_row.per_second == 12_500
    assert one_row.ratio_broker == pytest.approx(0.125), "12,500 of the broker's 100,000/s"
    assert one_row.ratio_postgres == pytest.approx(0.25), "12,500 of PostgreSQL's 50,000/s"
    assert row(rows, "foundation", "raw broker").ratio_broker == pytest.approx(1.0)
    accrual = row(rows, "points", "accrual: events -> outbox")
    assert accrual.ratio_postgres == pytest.approx(0.16)
    assert row(rows, "rewards", "incident").ratio_broker == pytest.approx(0.0125)


def test_without_the_foundation_section_no_ratio_is_made_up() -> None:
    sections = all_sections()
    del sections["foundation"]
    rows = summary_rows(sections)
    assert baselines_of(sections) is None
    assert all(r.ratio_broker is None and r.ratio_postgres is None for r in rows)
    assert "foundation section did not run" in summary_table(rows, None)[0]


def test_foundation_targets_sit_on_the_steady_rates_of_issue_12() -> None:
    rows = summary_rows(all_sections())
    noop, one_row = (
        row(rows, "foundation", "runtime, no-op"),
        row(rows, "foundation", "runtime, one-row"),
    )
    assert noop.targets == (Target(">= 30,000 events/s steady", "PASS"),)
    assert one_row.targets == (Target(">= 20,000 events/s steady", "MISS"),)
    assert not any("baseline" in t.text or "%" in t.text for t in one_row.targets), (
        "the share of the raw rates is a figure now, not a target"
    )


def test_start_to_first_batch_is_in_the_note_with_its_join_and_broker() -> None:
    rows = summary_rows(all_sections())
    assert (
        "1st batch 5.42 s (join 5.10) on tansu" in row(rows, "foundation", "runtime, one-row").note
    )
    assert "1st batch 5.30 s on kafka" in row(rows, "rewards", "incident").note


def test_balance_latency_row_carries_percentiles_but_no_ratio_to_event_rates() -> None:
    balance = row(summary_rows(all_sections()), "points", "balance GET")
    assert (balance.p50_ms, balance.p95_ms, balance.p99_ms) == (2.5, 6.0, 11.25)
    assert balance.unit == "requests" and balance.per_second == 999.2
    assert balance.ratio_broker is None, "HTTP requests are not events through the broker"
    assert balance.targets == (Target("p99 < 10 ms at 1,000/s, no errors", "PASS"),)


def test_points_accrual_targets_sit_on_the_end_to_end_steady_rate() -> None:
    rows = summary_rows(all_sections())
    assert row(rows, "points", "accrual: events -> balances").targets == ()
    relayed = row(rows, "points", "accrual: events -> outbox")
    assert relayed.targets == (
        Target(">= 10,000 events/s steady", "PASS"),
        Target("stretch >= 25,000 events/s steady", "MISS"),
    )
    assert "steady 10,400/s" in relayed.note


def test_alert_scans_report_alerts_per_second_and_the_growth_target() -> None:
    rows = summary_rows(all_sections())
    small = row(rows, "alerts", "lapse scan, 1,000 due among 100,000")
    assert small.per_second == pytest.approx(2_000), "1,000 alerts in a 0.5 s median scan"
    assert small.unit == "alerts" and small.targets == ()
    assert row(rows, "alerts", "lapse scan, 0 due").per_second is None, "nothing due, no rate"
    large = row(rows, "alerts", "lapse scan, 1,000 due among 1,000,000")
    assert [t.verdict for t in large.targets] == ["PASS"]
    assert "(1.60x)" in large.targets[0].text
    fit = row(rows, "alerts", "BG/NBD fit")
    assert fit.per_second == pytest.approx(25_000) and fit.ratio_broker is None


def test_rewards_row_carries_the_paced_target_and_whether_it_kept_up() -> None:
    rewards = row(summary_rows(all_sections()), "rewards", "incident")
    assert rewards.measurement == "incident -> compensation.granted, 1,000/s offered"
    assert (rewards.p50_ms, rewards.p95_ms, rewards.p99_ms) == (40.0, None, 120.0)
    assert rewards.targets == (Target("p99 < 1 s at 1,000/s, all compensated", "PASS"),)
    assert rewards.note.startswith("5,000 of 5,000 incidents compensated; published 998/s; kept up")


def test_a_target_no_builder_knows_still_gets_a_row() -> None:
    sections = all_sections()
    sections["points"] = {"target_new_rule_pass": False}
    rows = summary_rows(sections)
    assert row(rows, "points", "target_new_rule_pass").targets[0].verdict == "MISS"


def test_a_section_without_a_builder_shows_its_rates() -> None:
    rows = summary_rows({"search": {"indexing_eps": 300, "docs": 10}})
    assert [(r.measurement, r.per_second) for r in rows] == [("indexing", 300.0)]


def test_a_crashed_section_is_listed_with_its_error() -> None:
    rows = summary_rows({"rewards": {"error": "TimeoutError: no compensation"}})
    assert [(r.measurement, r.note) for r in rows] == [
        ("section failed", "TimeoutError: no compensation")
    ]


def test_the_table_has_one_line_per_row_and_one_per_further_target() -> None:
    sections = all_sections()
    rows = summary_rows(sections)
    lines = summary_table(rows, baselines_of(sections))
    preamble, header, rule = lines[0], lines[1], lines[2]
    assert "100,000 events/s" in preamble and "50,000 events/s" in preamble
    assert header.split()[:3] == ["section", "measurement", "throughput"]
    assert set(rule) == {"-"}
    body = [line for line in lines[3:] if not line.startswith(("throughput:", "targets are"))]
    further_targets = sum(len(r.targets) - 1 for r in rows if r.targets)
    assert len(body) == len(rows) + further_targets
    one_row = next(i for i, line in enumerate(body) if "runtime, one-row" in line)
    assert "12,500 events/s" in body[one_row] and "12.5%" in body[one_row]
    assert "MISS" in body[one_row] and "PASS" not in body[one_row]
    accrual = next(i for i, line in enumerate(body) if "accrual: events -> outbox" in line)
    assert body[accrual].count("PASS") == 1 and "MISS" in body[accrual + 1]
    column = body[accrual].index(">= 10,000")
    assert body[accrual + 1].index("stretch >= 25,000") == column, (
        "a further target lines up under the first"
    )
    balance = next(line for line in body if "balance GET" in line)
    assert "11.2" in balance or "11.3" in balance, "the p99 is printed"


def test_json_holds_the_run_the_rows_and_each_sections_figures(tmp_path: Path) -> None:
    sections = all_sections()
    sections["points"]["balance_p99_ms"] = math.nan  # no request answered: not a number
    rows = summary_rows(sections)
    path = tmp_path / "bench-results.json"
    path.write_text('{"foundation.events": 1}')  # an older run's file is replaced
    write_results(path, results_document({"events": 5000}, sections, rows))
    written = json.loads(path.read_text())
    assert set(written) == {"run", "rows", "sections"}
    assert written["run"] == {"events": 5000}
    assert len(written["rows"]) == len(rows)
    first = written["rows"][0]
    assert first["measurement"].startswith("raw broker consume")
    assert first["ratio_to_raw_broker"] == 1.0 and first["ratio_to_raw_postgres"] == 2.0
    balance = next(r for r in written["rows"] if r["measurement"].startswith("balance GET"))
    assert balance["p99_ms"] is None and balance["targets"][0]["verdict"] == "PASS"
    assert written["sections"]["points"]["balance_p99_ms"] is None
    assert written["sections"]["alerts"]["scan_growth_1m_vs_100k"] == 1.6
