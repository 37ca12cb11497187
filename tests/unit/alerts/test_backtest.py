"""The lapse-rule backtest: hand-checked figures, no peeking at the future, and CDNOW."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from services.alerts.backtest.service import (
    Purchase,
    TransactionsError,
    backtest,
    purchase_log,
    read_transactions,
    report_lines,
)
from services.alerts.domain.backtest import (
    ALL_MERCHANTS,
    RuleScore,
    Scorecard,
    area_under_curve,
    customer_facts,
    suggest_threshold,
)
from services.alerts.domain.lapse import LapseRule, LapseRules
from tooling.cli import main

CDNOW = Path(__file__).parents[2] / "data" / "cdnow_sample.txt"
CDNOW_AS_OF = datetime(1997, 9, 30, tzinfo=UTC)
START = datetime(2025, 1, 1, tzinfo=UTC)
AS_OF = START + timedelta(days=200)


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def rule(card: Scorecard, name: str) -> RuleScore:
    return next(r for r in card.rules if r.name == name)


def score(card: Scorecard, name: str) -> float | None:
    return next(s.auc for s in card.scores if s.name == name)


WINDOW_ONLY = {
    ALL_MERCHANTS: LapseRules(
        inactivity_window=timedelta(days=100), enabled=frozenset({LapseRule.INACTIVITY})
    )
}


def test_figures_are_counted_as_defined_on_a_hand_checked_population() -> None:
    purchases = [
        # silent 150 days, never back: flagged, lapsed (true positive), spent 300.00
        Purchase("gone", day(50), 30_000),
        # silent 150 days, back after as_of: flagged, not lapsed (false positive)
        Purchase("back", day(50), 10_000),
        Purchase("back", AS_OF + timedelta(days=30), 10_000),
        # silent 20 days, never back: not flagged, lapsed (missed), spent 100.00
        Purchase("missed", day(180), 10_000),
        # silent 10 days, back: not flagged, not lapsed
        Purchase("loyal", day(190), 5_000),
        Purchase("loyal", AS_OF + timedelta(days=5), 5_000),
        # first purchase after as_of: not known then, so not in the backtest at all
        Purchase("newcomer", AS_OF + timedelta(days=1), 99_999),
    ]
    result = backtest(purchase_log(purchases), AS_OF, 90, WINDOW_ONLY)
    card = result.overall
    assert (card.customers, card.lapsed, card.base_rate) == (4, 2, 0.5)
    window = rule(card, "inactivity")
    assert (window.flagged, window.lapsed_flagged, window.precision, window.recall) == (
        2,
        1,
        0.5,
        0.5,
    )
    assert window.lift == pytest.approx(1.0), "precision equal to the base rate is lift 1"
    assert window.value_recall == pytest.approx(30_000 / 40_000), "spend-weighted recall"
    assert rule(card, "own_rhythm").enabled is False
    # Silence ranks: gone 150, back 150, missed 20, loyal 10 -> lapsed above returning in
    # (gone vs back: tie 0.5) + (gone vs loyal: 1) + (missed vs back: 0) + (missed vs loyal: 1)
    assert score(card, "days_since_last_purchase") == pytest.approx(2.5 / 4)
    assert result.model is None, "nobody came back before as_of: no model can be fitted"


def test_a_purchase_after_the_horizon_does_not_count_as_coming_back() -> None:
    purchases = [Purchase("late", day(10), 1_000), Purchase("late", AS_OF + timedelta(days=91), 1)]
    card = backtest(purchase_log(purchases), AS_OF, 90, WINDOW_ONLY).overall
    assert (card.customers, card.lapsed) == (1, 1)


def test_the_future_never_leaks_into_what_was_known() -> None:
    known = [Purchase(f"c{k}", day(k), 1_000) for k in range(0, 150, 3)]
    known += [Purchase(f"c{k}", day(k + 20), 1_000) for k in range(0, 150, 6)]
    future = [Purchase(f"c{k}", AS_OF + timedelta(days=k % 80 + 1), 500) for k in range(0, 150, 9)]
    alone = backtest(purchase_log([*known, Purchase("x", AS_OF + timedelta(days=1), 1)]), AS_OF, 90)
    with_future = backtest(purchase_log(known + future), AS_OF, 90)
    assert alone.model is not None and with_future.model is not None
    assert alone.model.r == pytest.approx(with_future.model.r), "the model saw the future"
    flags = {r.name: r.flagged for r in alone.overall.rules}
    assert flags == {r.name: r.flagged for r in with_future.overall.rules}


def test_same_visit_purchases_and_home_merchant_follow_the_service() -> None:
    purchases = [
        Purchase("c", day(0), 1_000, "corner"),
        Purchase("c", day(0) + timedelta(hours=2), 9_000, "mall"),  # same visit
        Purchase("c", day(7), 2_000, "corner"),
        Purchase("c", day(14), 2_000, "corner"),
    ]
    log = purchase_log(purchases)
    facts = customer_facts(log, (AS_OF - datetime(1970, 1, 1, tzinfo=UTC)).days, 90)
    assert facts.visits.tolist() == [3], "two receipts two hours apart are one visit"
    assert facts.gap_count.tolist() == [2]
    assert log.merchant_names[facts.home_merchant[0]] == "mall", "9,000 at the mall > 5,000"


def test_auc_counts_ties_half_and_needs_both_classes() -> None:
    lapsed = np.array([True, False, True, False])
    assert area_under_curve(np.array([4.0, 3.0, 2.0, 1.0]), lapsed) == pytest.approx(0.75)
    assert area_under_curve(np.array([1.0, 1.0, 1.0, 1.0]), lapsed) == pytest.approx(0.5)
    assert area_under_curve(np.array([1.0, 2.0]), np.array([True, True])) is None


def test_the_suggested_threshold_is_the_lowest_that_reaches_the_precision() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    lapsed = np.array([True, True, False, True, False])
    suggested = suggest_threshold(scores, lapsed, target_precision=0.75)
    assert suggested is not None
    assert (suggested.no_purchase_probability, suggested.recall) == (0.6, 1.0)
    assert suggested.precision == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("customer_id,date,amount\nc1,2025-01-01,-3.00\n", "line 2"),
        ("customer_id,date,amount\nc1,2025-01-01T10:00:00,3.00\n", "time zone"),
        ("customer_id,amount\nc1,3.00\n", "date"),
        (" 00001 0001 1997010x 1 10.00\n", "line 1"),
    ],
)
def test_unreadable_transactions_name_the_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(TransactionsError, match=problem):
        read_transactions(path)


def test_cdnow_backtest_reproduces_the_published_fit_and_scores_every_rule() -> None:
    result = backtest(read_transactions(CDNOW), CDNOW_AS_OF, 273)
    model, card = result.model, result.overall
    assert model is not None
    assert (round(model.r, 4), round(model.alpha, 4), round(model.a, 4), round(model.b, 4)) == (
        0.2426,
        4.4136,
        0.7929,
        2.4259,
    ), "the backtest refits BG/NBD on calibration data exactly as published"
    assert model.log_likelihood == pytest.approx(-9582.43, abs=0.01)
    assert (card.customers, card.lapsed) == (2_357, 1_673)
    base = card.base_rate
    assert base is not None, "the score card has a base rate"
    assert base == pytest.approx(0.7098, abs=1e-4), "71% make no purchase in weeks 40-78"
    window = rule(card, "inactivity")
    assert (window.flagged, round(window.precision or 0, 2), round(window.recall or 0, 2)) == (
        1_840,
        0.81,
        0.89,
    )
    enabled = [r for r in card.rules if r.enabled and not r.name.startswith("combined")]
    assert {r.name for r in enabled} == {"inactivity", "own_rhythm", "no_purchase_probability"}
    for enabled_rule in enabled:
        assert (enabled_rule.precision or 0) > base, f"{enabled_rule} no better than chance"
    model_rule = rule(card, "no_purchase_probability")
    assert model_rule.precision == pytest.approx(0.844, abs=1e-3)
    assert model_rule.recall == pytest.approx(0.821, abs=1e-3)
    assert score(card, "days_since_last_purchase") == pytest.approx(0.771, abs=1e-3)
    assert score(card, "no_purchase_probability") == pytest.approx(0.757, abs=1e-3)
    assert result.hindsight_ceiling_auc == pytest.approx(0.783, abs=1e-3), (
        "even fitted on the holdout outcome, recency/frequency/age/spend rank at AUC 0.78"
    )
    assert (score(card, "1 - alive_probability (diagnostic)") or 1) < 0.5, (
        "P(alive) ranks worse than chance on CDNOW: one-time buyers are 'alive' by definition"
    )


def test_the_old_rhythm_rule_was_worse_than_chance_on_cdnow() -> None:
    # The rule before issue 14 (k = 3 from 3 visits, any spread) must show what was wrong.
    old = LapseRules(rhythm_min_visits=3, rhythm_max_variation=1e9)
    card = backtest(read_transactions(CDNOW), CDNOW_AS_OF, 273, {ALL_MERCHANTS: old}).overall
    rhythm = rule(card, "own_rhythm")
    assert rhythm.flagged == 147 and (rhythm.precision or 1) < (card.base_rate or 0)


def test_the_cli_prints_the_cdnow_report(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["backtest", "--as-of", "1997-09-30", "--horizon", "273", "--transactions", str(CDNOW)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2,357 customers, 1,673 lapsed (base rate 0.710)" in out
    assert "r 0.2426, alpha 4.4136 weeks, a 0.7929, b 2.4259, LL -9582.43" in out
    assert any(line.startswith("no_purchase_probability") for line in out.splitlines())


def test_report_lines_name_every_rule() -> None:
    result = backtest(purchase_log([Purchase("a", day(1), 100)]), AS_OF, 30, WINDOW_ONLY)
    text = "\n".join(report_lines(result, AS_OF))
    assert "inactivity" in text and "combined (any enabled rule)" in text


def test_an_empty_history_gives_empty_figures_not_a_crash() -> None:
    for purchases in ([], [Purchase("later", AS_OF + timedelta(days=3), 100)]):
        result = backtest(purchase_log(purchases), AS_OF, 90)
        assert (result.overall.customers, result.overall.base_rate) == (0, None)
        assert all(r.flagged == 0 and r.precision is None for r in result.overall.rules)
        assert result.by_merchant == ()
