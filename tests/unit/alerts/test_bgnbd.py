"""BG/NBD model: validated against the published CDNOW fit and against direct integration."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import dblquad
from scipy.special import gammaln

from services.alerts.domain.activity import ActivityError
from services.alerts.domain.bgnbd import (
    BgNbdParams,
    ModelFitError,
    age_when_alive_probability_falls_to,
    expected_purchases,
    fit_bgnbd,
    log_likelihood,
    probability_alive,
    summary_to_rfm,
)

CDNOW = Path(__file__).parent / "data" / "cdnow_customers_summary.csv"
# Fader, Hardie & Lee (2005), CDNOW sample, weeks.
PUBLISHED = BgNbdParams(
    r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=-9582.4, n_customers=2357
)


def load_cdnow() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with CDNOW.open(newline="") as source:
        rows = list(csv.DictReader(source))
    columns = ("frequency", "recency", "T")
    x, t_x, age = (np.array([float(row[c]) for row in rows]) for c in columns)
    return x, t_x, age


@pytest.fixture(scope="module")
def cdnow_fit() -> BgNbdParams:
    return fit_bgnbd(*load_cdnow())


def test_cdnow_fit_reproduces_the_published_parameters(cdnow_fit: BgNbdParams) -> None:
    for name in ("r", "alpha", "a", "b"):
        fitted, published = getattr(cdnow_fit, name), getattr(PUBLISHED, name)
        assert round(fitted, 2) == round(published, 2), (
            f"BG/NBD {name} on CDNOW is {fitted:.4f}, Fader-Hardie-Lee publish {published}"
        )
    assert cdnow_fit.log_likelihood == pytest.approx(-9582.4, abs=0.05), "published LL -9582.4"
    assert cdnow_fit.n_customers == 2357
    assert cdnow_fit.time_unit == timedelta(weeks=1)


def test_paper_example_customer_expects_1_226_purchases_in_39_weeks(
    cdnow_fit: BgNbdParams,
) -> None:
    # Section 4 of the paper: x = 2, t_x = 30.43, T = 38.86 -> 1.226 in the next 39 weeks.
    expected = float(expected_purchases(cdnow_fit, 39.0, 2, 30.43, 38.86))
    assert expected == pytest.approx(1.226, abs=5e-4), "paper's worked example not reproduced"


def _posterior_integral(
    params: BgNbdParams,
    x: int,
    t_x: float,
    age: float,
    alive_weight: Callable[[float, float], float] | None,
    dead: bool,
) -> float:
    """Integrate likelihood x prior over lambda and p directly (no closed forms used).

    Substituting lambda = v**(1/r) and p = u**(1/a) absorbs the prior's endpoint singularities.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_norm = r * np.log(alpha) - gammaln(r) + gammaln(a + b) - gammaln(a) - gammaln(b)

    def integrand(u: float, v: float) -> float:
        lam, p = v ** (1.0 / r), u ** (1.0 / a)
        prior = np.exp(log_norm - alpha * lam + (b - 1) * np.log1p(-p)) / (r * a)
        if dead:
            return float(prior * p * (1 - p) ** (x - 1) * lam**x * np.exp(-lam * t_x))
        return float(
            prior
            * (1 - p) ** x
            * lam**x
            * np.exp(-lam * age)
            * (1.0 if alive_weight is None else alive_weight(lam, p))
        )

    value, _ = dblquad(integrand, 0.0, 5.0, 0.0, 1.0, epsabs=1e-13, epsrel=1e-9)
    return float(value)


@pytest.mark.parametrize(("x", "t_x", "age"), [(1, 5.0, 38.0), (2, 30.43, 38.86), (6, 12.0, 36.0)])
def test_alive_probability_matches_direct_integration(x: int, t_x: float, age: float) -> None:
    alive = _posterior_integral(PUBLISHED, x, t_x, age, None, dead=False)
    dead = _posterior_integral(PUBLISHED, x, t_x, age, None, dead=True)
    closed_form = float(probability_alive(PUBLISHED, x, t_x, age))
    assert closed_form == pytest.approx(alive / (alive + dead), rel=1e-4), (
        f"P(alive) for x={x}, t_x={t_x}, T={age} disagrees with integrating the posterior"
    )


@pytest.mark.parametrize(
    ("horizon", "x", "t_x", "age"), [(10.0, 1, 5.0, 38.0), (39.0, 2, 30.43, 38.86)]
)
def test_conditional_expectation_matches_direct_integration(
    horizon: float, x: int, t_x: float, age: float
) -> None:
    def purchases_while_alive(lam: float, p: float) -> float:
        return float(-np.expm1(-lam * p * horizon) / p)  # E[purchases in horizon | lam, p, alive]

    numerator = _posterior_integral(PUBLISHED, x, t_x, age, purchases_while_alive, dead=False)
    evidence = _posterior_integral(PUBLISHED, x, t_x, age, None, dead=False)
    evidence += _posterior_integral(PUBLISHED, x, t_x, age, None, dead=True)
    closed_form = float(expected_purchases(PUBLISHED, horizon, x, t_x, age))
    assert closed_form == pytest.approx(numerator / evidence, rel=1e-4), (
        "expected purchases (eq. 10, hyp2f1) disagree with integrating over the posterior"
    )


def test_customer_who_never_came_back_is_certainly_alive_under_bgnbd() -> None:
    assert float(probability_alive(PUBLISHED, 0, 0.0, 38.0)) == 1.0


def test_alive_probability_falls_the_longer_a_regular_customer_stays_away() -> None:
    ages = np.array([20.0, 25.0, 30.0, 40.0, 80.0])
    chances = probability_alive(PUBLISHED, np.full(5, 8), np.full(5, 20.0), ages)
    assert np.all(np.diff(chances) < 0), f"P(alive) should fall with silence, got {chances}"
    assert chances[-1] < 0.01, "a frequent buyer silent for 60 weeks is almost surely gone"


def test_age_at_threshold_is_where_alive_probability_equals_it() -> None:
    age = age_when_alive_probability_falls_to(PUBLISHED, 4, 20.0, 0.3)
    assert age is not None and age > 20.0
    assert float(probability_alive(PUBLISHED, 4, 20.0, age)) == pytest.approx(0.3, abs=1e-9)
    assert age_when_alive_probability_falls_to(PUBLISHED, 0, 0.0, 0.3) is None


def test_heavy_buyer_expectation_is_smooth_where_the_series_overflows() -> None:
    # From about 1,100 purchases the plain hypergeometric series overflows and the Euler form
    # takes over; purchases expected per past purchase must not jump at the switch.
    per_purchase = [
        float(expected_purchases(PUBLISHED, 52.0, x, 52.0, 52.0)) / x for x in (1000, 1200, 3000)
    ]
    assert all(np.isfinite(per_purchase)), f"heavy buyers got {per_purchase}"
    assert per_purchase == pytest.approx([0.6994] * 3, abs=1e-4), (
        f"expected purchases per past purchase jump at the overflow switch: {per_purchase}"
    )


def test_weights_stand_for_identical_customers() -> None:
    x, t_x, age = load_cdnow()
    expanded = fit_bgnbd(np.repeat(x, 3), np.repeat(t_x, 3), np.repeat(age, 3))
    weighted = fit_bgnbd(x, t_x, age, weights=np.full(x.size, 3))
    assert weighted.n_customers == 3 * 2357 == expanded.n_customers
    assert weighted.log_likelihood == pytest.approx(expanded.log_likelihood, rel=1e-9)
    assert weighted.r == pytest.approx(expanded.r, rel=1e-4)
    assert weighted.a == pytest.approx(expanded.a, rel=1e-4)


def test_fit_scales_to_a_hundred_thousand_customers_via_weights() -> None:
    x, t_x, age = load_cdnow()
    fit = fit_bgnbd(x, t_x, age, weights=np.full(x.size, 50))
    assert fit.n_customers == 117_850
    assert round(fit.r, 2) == 0.24 and round(fit.b, 2) == 2.43, "scaled fit moved the optimum"


def _simulate(n: int, truth: BgNbdParams, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    rates = rng.gamma(truth.r, 1.0 / truth.alpha, n)
    dropout = rng.beta(truth.a, truth.b, n)
    ages = rng.uniform(26.0, 52.0, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        moment = rng.exponential(1.0 / rates[i])
        while moment <= ages[i]:
            x[i], t_x[i] = x[i] + 1, moment
            if rng.random() < dropout[i]:
                break
            moment += rng.exponential(1.0 / rates[i])
    return x, t_x, ages


def test_fit_recovers_the_parameters_that_generated_the_data() -> None:
    truth = BgNbdParams(r=0.5, alpha=5.0, a=0.8, b=2.5, log_likelihood=0.0, n_customers=1)
    x, t_x, ages = _simulate(30_000, truth, seed=11)
    fit = fit_bgnbd(x, t_x, ages, time_unit=timedelta(weeks=1))
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit, name) == pytest.approx(getattr(truth, name), rel=0.12), (
            f"{name} fitted as {getattr(fit, name):.3f}, data came from {getattr(truth, name)}"
        )
    at_truth = log_likelihood(0.5, 5.0, 0.8, 2.5, x=x, t_x=t_x, age=ages)
    assert fit.log_likelihood >= at_truth, "the maximum-likelihood fit is worse than the truth"


def test_fit_refuses_a_population_where_nobody_came_back() -> None:
    with pytest.raises(ModelFitError, match="came back"):
        fit_bgnbd([0, 0, 0], [0.0, 0.0, 0.0], [5.0, 6.0, 7.0])


@pytest.mark.parametrize(
    ("x", "t_x", "age"),
    [([1], [5.0], [4.0]), ([0], [1.0], [4.0]), ([-1], [0.0], [4.0]), ([1.5], [1.0], [4.0])],
)
def test_impossible_histories_are_rejected(
    x: list[float], t_x: list[float], age: list[float]
) -> None:
    with pytest.raises(ValueError):
        fit_bgnbd(x, t_x, age)


def test_parameters_must_be_positive() -> None:
    with pytest.raises(ModelFitError):
        replace(PUBLISHED, a=0.0)


def test_summary_converts_to_frequency_recency_and_age_in_weeks() -> None:
    first = datetime(2024, 1, 1, tzinfo=UTC)
    last, now = first + timedelta(days=21), first + timedelta(days=35)
    frequency, recency, age = summary_to_rfm(first, last, 4, now)
    assert frequency == 3
    assert (recency, age) == pytest.approx((3.0, 5.0))
    frequency, recency, age = summary_to_rfm(first, first, 1, now, unit_days=1.0)
    assert (frequency, recency) == (0, 0.0)
    assert age == pytest.approx(35.0)
    skewed = summary_to_rfm(first, last, 4, last - timedelta(hours=1))
    assert skewed[2] == skewed[1], "a clock slightly behind the last purchase means age = recency"
    with pytest.raises(ActivityError):
        summary_to_rfm(first, last, 4, datetime(2024, 3, 1))
    with pytest.raises(ValueError):
        summary_to_rfm(first, last, 0, now)
