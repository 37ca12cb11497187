"""Target lines and the figures behind their verdicts (issue 12's targets)."""

from __future__ import annotations

import math

import pytest

from bench.report import Progress, target_line
from bench.rewards import RATE, summarize


def test_a_target_is_one_line_with_its_figure_and_verdict() -> None:
    assert target_line("runtime no-op >= 30,000 events/s steady", "31,200", True) == (
        "target runtime no-op >= 30,000 events/s steady: 31,200 PASS"
    )
    assert target_line("x < 1 s", "p99 1,200 ms", False) == "target x < 1 s: p99 1,200 ms MISS"


def test_steady_until_counts_the_events_after_warm_up_until_their_output_was_relayed() -> None:
    progress = Progress(1000)
    progress.started = 0.0
    progress.marks = [(5.0, 100), (6.0, 500), (7.0, 1000)]  # 10% reached at 5.0 s
    assert progress.rate("committed").steady_eps == pytest.approx(900 / 2.0)
    assert progress.steady_until(9.0) == pytest.approx(900 / 4.0), "relayed 2 s after commit"
    assert Progress(10).steady_until(3.0) == 0.0, "nothing committed, no rate"


def paced(count: int, rate: float, latency_s: float) -> tuple[dict[str, float], dict[str, float]]:
    sent = {f"o{n}": 10.0 + n / rate for n in range(count)}
    return sent, {order: at + latency_s for order, at in sent.items()}


def test_paced_incidents_answered_within_a_second_pass() -> None:
    sent, arrived = paced(2000, RATE, 0.2)
    figures = summarize(2000, sent, arrived)
    assert figures["publish_achieved_rps"] == pytest.approx(RATE, rel=0.001)
    assert figures["latency_p99_ms"] == pytest.approx(200.0)
    assert figures["latency_max_ms"] == pytest.approx(200.0)
    assert figures["compensated"] == 2000 and figures["kept_up"] is True
    assert figures["target_compensation_p99_pass"] is True


def test_a_slow_p99_misses() -> None:
    sent, arrived = paced(1000, RATE, 0.2)
    for n in range(980, 1000):  # the last 2% took 1.5 s
        arrived[f"o{n}"] = sent[f"o{n}"] + 1.5
    figures = summarize(1000, sent, arrived)
    assert figures["latency_p99_ms"] == pytest.approx(1500.0)
    assert figures["target_compensation_p99_pass"] is False
    assert figures["kept_up"] is False, "a backlog of 1.5 s was left when publishing stopped"


def test_a_missing_compensation_misses_even_with_a_fast_p99() -> None:
    sent, arrived = paced(1000, RATE, 0.1)
    del arrived["o500"]
    figures = summarize(1000, sent, arrived)
    assert figures["compensated"] == 999 and figures["latency_p99_ms"] < 1000
    assert figures["target_compensation_p99_pass"] is False
    assert figures["kept_up"] is False


def test_a_publisher_that_fell_behind_the_offered_rate_proves_nothing() -> None:
    sent, arrived = paced(1000, RATE / 2, 0.1)
    figures = summarize(1000, sent, arrived)
    assert figures["publish_achieved_rps"] == pytest.approx(RATE / 2, rel=0.001)
    assert figures["target_compensation_p99_pass"] is False


def test_nothing_compensated_reports_no_latency() -> None:
    sent, _ = paced(10, RATE, 0.1)
    figures = summarize(10, sent, {})
    assert math.isnan(figures["latency_p99_ms"]) and figures["compensated"] == 0
    assert figures["target_compensation_p99_pass"] is False
