"""The BG/NBD model of repeat buying (Fader, Hardie & Lee 2005, "Counting Your Customers
the Easy Way", Marketing Science 24(2)).

Why a model: a fixed inactivity window cannot tell a customer who is merely between purchases
from one who has quietly left. BG/NBD assumes that while a customer is "alive" they buy as a
Poisson process with rate lambda (gamma(r, alpha) across customers) and that after each purchase
they leave for good with probability p (beta(a, b) across customers). From three numbers per
customer it then gives the probability they are still active and how many purchases to expect.

Per customer (all times in one `time_unit`, e.g. weeks):
  x    frequency: number of REPEAT purchases (purchase occasions minus one);
  t_x  recency: time from the first to the last purchase;
  T    age: time from the first purchase to the moment of evaluation.

Pure numerics: arrays in, arrays or a frozen parameter record out; no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import expit, gammaln, hyp2f1

from services.alerts.domain.activity import days_between, require_aware

FloatArray = npt.NDArray[np.float64]

WEEK = timedelta(weeks=1)
# Times are rescaled so the oldest customer is this old before optimising: it keeps alpha near
# 1 whatever the time unit, which is what makes one default starting point work for every merchant.
_SCALED_MAX_AGE = 10.0
_LOG_PARAM_BOUND = 15.0  # exp(+-15): far beyond any plausible parameter, keeps exp() finite


class ModelFitError(ValueError):
    """The data cannot support a BG/NBD fit (e.g. nobody ever came back), or it diverged."""


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """Fitted population parameters; `alpha` is expressed in `time_unit`."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_customers: int
    time_unit: timedelta = WEEK

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ModelFitError(f"model parameter {name} must be positive, got {value}")
        if self.time_unit <= timedelta(0):
            raise ModelFitError("the model's time unit must be a positive duration")

    @property
    def unit_days(self) -> float:
        return self.time_unit / timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _Customers:
    """Validated (and possibly grouped) customer rows, as float arrays of equal length."""

    x: FloatArray
    t_x: FloatArray
    age: FloatArray
    weights: FloatArray


def summary_to_rfm(
    first_purchase: datetime,
    last_purchase: datetime,
    purchase_count: int,
    now: datetime,
    unit_days: float = 7.0,
) -> tuple[int, float, float]:
    """(x, t_x, T) for one customer, in units of `unit_days` days.

    `purchase_count` counts purchase occasions, the first one included. A `now` slightly before
    the last purchase (a point-of-sale clock ahead of ours) is treated as the moment of that
    purchase rather than rejected, so a scanner never fails on clock skew.
    """
    for moment, what in ((first_purchase, "first purchase"), (last_purchase, "last purchase")):
        require_aware(moment, what)
    require_aware(now, "evaluation time")
    if purchase_count < 1:
        raise ValueError(
            f"a customer with a first purchase has bought at least once, got {purchase_count}"
        )
    if last_purchase < first_purchase:
        raise ValueError("the last purchase cannot precede the first one")
    if unit_days <= 0:
        raise ValueError("the time unit must be a positive number of days")
    repeat_purchases = purchase_count - 1
    recency = days_between(first_purchase, last_purchase) / unit_days if repeat_purchases else 0.0
    age = max(days_between(first_purchase, now) / unit_days, recency)
    return repeat_purchases, recency, age


def customer_log_likelihoods(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> FloatArray:
    """Log-likelihood of each customer's (x, t_x, T), eq. (6) of the paper, computed in logs.

    The two terms (still alive at T / left right after the last purchase) are combined with
    logaddexp so customers with hundreds of purchases do not overflow.
    """
    shared = (
        gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        + gammaln(a + b)
        + gammaln(b + x)
        - gammaln(b)
        - gammaln(a + b + x)
    )
    still_alive = -(r + x) * np.log(alpha + age)
    left_after_last = np.where(
        x > 0,
        np.log(a) - np.log(b + np.maximum(x, 1.0) - 1.0) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return np.asarray(shared + np.logaddexp(still_alive, left_after_last), dtype=np.float64)


def log_likelihood(
    r: float,
    alpha: float,
    a: float,
    b: float,
    *,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    age: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> float:
    """Total log-likelihood of a population; `weights` counts identical customers."""
    data = _validated_customers(x, t_x, age, weights)
    per_customer = customer_log_likelihoods(r, alpha, a, b, data.x, data.t_x, data.age)
    return float(np.dot(data.weights, per_customer))


def fit_bgnbd(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    age: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    *,
    time_unit: timedelta = WEEK,
) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters for customers given in `time_unit`.

    Identical (x, t_x, T) rows are grouped first, so cost grows with the number of distinct
    histories, not customers. The optimiser works on log-parameters (positivity for free) over
    rescaled times, with L-BFGS-B followed by a Nelder-Mead polish from the best point found.
    """
    data = _group_identical(_validated_customers(x, t_x, age, weights))
    if not np.any(data.x > 0):
        raise ModelFitError("no customer ever came back: repeat buying cannot be estimated")
    scale = _SCALED_MAX_AGE / max(float(data.age.max()), 1e-12)
    objective = _mean_negative_log_likelihood(data, scale)
    best_log_params = _minimise(objective)
    r, scaled_alpha, a, b = (float(v) for v in np.exp(best_log_params))
    alpha = scaled_alpha / scale
    total = float(
        np.dot(data.weights, customer_log_likelihoods(r, alpha, a, b, data.x, data.t_x, data.age))
    )
    if not np.isfinite(total):
        raise ModelFitError("the fit diverged: the log-likelihood is not finite")
    return BgNbdParams(r, alpha, a, b, total, round(float(data.weights.sum())), time_unit)


def probability_alive(
    params: BgNbdParams, x: npt.ArrayLike, t_x: npt.ArrayLike, age: npt.ArrayLike
) -> FloatArray:
    """P(customer still active | x, t_x, T) (Fader, Hardie & Lee, note 021).

    A customer who never came back (x = 0) is alive with probability 1 under BG/NBD, because
    dropping out can only happen right after a repeat purchase.
    """
    xs, recency, ages = (np.asarray(v, dtype=np.float64) for v in (x, t_x, age))
    log_odds_gone = (
        np.log(params.a)
        - np.log(params.b + np.maximum(xs, 1.0) - 1.0)
        + (params.r + xs) * np.log((params.alpha + ages) / (params.alpha + recency))
    )
    return np.asarray(np.where(xs == 0, 1.0, expit(-log_odds_gone)), dtype=np.float64)


def expected_purchases(
    params: BgNbdParams,
    horizon: npt.ArrayLike,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    age: npt.ArrayLike,
) -> FloatArray:
    """E[purchases in (T, T + horizon] | x, t_x, T], eq. (10) of the paper.

    When the Gauss hypergeometric series overflows (many purchases, long horizon) the Euler
    transformation 2F1(a,b;c;z) = (1-z)^(c-a-b) 2F1(c-a,c-b;c;z) gives the same value finitely.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t, xs, recency, ages = (np.asarray(v, dtype=np.float64) for v in (horizon, x, t_x, age))
    hyp_a, hyp_b, hyp_c = r + xs, b + xs, a + b + xs - 1.0
    z = t / (alpha + ages + t)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        log_hyp = np.log(hyp2f1(hyp_a, hyp_b, hyp_c, z))
        log_hyp_euler = np.log(hyp2f1(hyp_c - hyp_a, hyp_c - hyp_b, hyp_c, z)) + (
            hyp_c - hyp_a - hyp_b
        ) * np.log1p(-z)
    log_hyp = np.where(np.isfinite(log_hyp), log_hyp, log_hyp_euler)
    if_alive = (
        (a + b + xs - 1.0)
        / (a - 1.0)
        * -np.expm1(log_hyp + (r + xs) * np.log((alpha + ages) / (alpha + ages + t)))
    )
    odds_gone = np.where(
        xs > 0,
        a / (b + np.maximum(xs, 1.0) - 1.0) * ((alpha + ages) / (alpha + recency)) ** (r + xs),
        0.0,
    )
    return np.asarray(if_alive / (1.0 + odds_gone), dtype=np.float64)


def age_when_alive_probability_falls_to(
    params: BgNbdParams, x: int, t_x: float, probability: float
) -> float | None:
    """The customer age T (in model units) at which P(alive) drops to `probability`.

    P(alive) falls monotonically with T while nothing is bought, so this closed form tells a
    scanner exactly when the probabilistic rule will trip. None when it never will (x = 0).
    If the model already puts the customer below `probability` at their last purchase, the
    answer is t_x itself: the rule is due straight away.
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(
            f"a probability threshold lies strictly between 0 and 1, got {probability}"
        )
    if x <= 0:
        return None
    log_odds = np.log1p(-probability) - np.log(probability)
    log_ratio = (log_odds + np.log(params.b + x - 1.0) - np.log(params.a)) / (params.r + x)
    age = (params.alpha + t_x) * float(np.exp(log_ratio)) - params.alpha
    return max(age, t_x)


def _validated_customers(
    x: npt.ArrayLike, t_x: npt.ArrayLike, age: npt.ArrayLike, weights: npt.ArrayLike | None
) -> _Customers:
    xs, recency, ages = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (x, t_x, age))
    ws = np.ones_like(xs) if weights is None else np.atleast_1d(np.asarray(weights, np.float64))
    if not (xs.ndim == 1 and xs.shape == recency.shape == ages.shape == ws.shape) or xs.size == 0:
        raise ValueError("frequency, recency, age and weights must be equal-length 1-D arrays")
    if not np.all(np.isfinite(np.concatenate([xs, recency, ages, ws]))):
        raise ValueError("customer histories must be finite numbers")
    if np.any(xs < 0) or np.any(xs != np.round(xs)):
        raise ValueError("frequency counts repeat purchases: a whole number >= 0")
    if np.any(recency < 0) or np.any(recency > ages):
        raise ValueError("recency must lie between 0 and the customer's age")
    if np.any((xs == 0) & (recency != 0)):
        raise ValueError("a customer without repeat purchases has recency 0")
    if np.any(ws <= 0):
        raise ValueError("weights count customers and must be positive")
    return _Customers(xs, recency, ages, ws)


def _group_identical(data: _Customers) -> _Customers:
    rows = np.column_stack([data.x, data.t_x, data.age])
    unique_rows, owner = np.unique(rows, axis=0, return_inverse=True)
    counts = np.bincount(owner.ravel(), weights=data.weights).astype(np.float64)
    return _Customers(unique_rows[:, 0], unique_rows[:, 1], unique_rows[:, 2], counts)


def _mean_negative_log_likelihood(data: _Customers, scale: float) -> Callable[[FloatArray], float]:
    """Objective on log-parameters over times multiplied by `scale`.

    Rescaling time only shifts the log-likelihood by a constant, so the maximiser is the same
    (with alpha rescaled); dividing by the customer count keeps gradients O(1) at any size.
    """
    recency, ages, total_weight = data.t_x * scale, data.age * scale, float(data.weights.sum())

    def objective(log_params: FloatArray) -> float:
        r, alpha, a, b = np.exp(log_params)
        per_customer = customer_log_likelihoods(r, alpha, a, b, data.x, recency, ages)
        value = -float(np.dot(data.weights, per_customer)) / total_weight
        return value if np.isfinite(value) else 1e100

    return objective


def _minimise(objective: Callable[[FloatArray], float]) -> FloatArray:
    bounds = [(-_LOG_PARAM_BOUND, _LOG_PARAM_BOUND)] * 4
    start = np.zeros(4)  # r = alpha = a = b = 1 on the rescaled clock
    coarse = minimize(objective, start, method="L-BFGS-B", bounds=bounds)
    polished = minimize(
        objective,
        coarse.x,
        method="Nelder-Mead",
        bounds=bounds,
        options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 2000},
    )
    best = polished if polished.fun <= coarse.fun else coarse
    if not np.isfinite(best.fun) or best.fun >= 1e100:
        raise ModelFitError("the optimiser could not find a finite likelihood")
    return np.asarray(best.x, dtype=np.float64)


def probability_no_purchase(
    params: BgNbdParams,
    horizon: npt.ArrayLike,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    age: npt.ArrayLike,
) -> FloatArray:
    """P(no purchase in (T, T + horizon] | x, t_x, T): what a lapse warning needs to know.

    Either the customer has already left (1 - P(alive)), or they are alive and their Poisson
    clock does not tick in the horizon. Given alive at T, lambda's posterior is
    gamma(r + x, alpha + T), so that chance is ((alpha + T) / (alpha + T + horizon))^(r + x).
    Unlike P(alive), this is not 1 for a one-time buyer: their silence still counts through the
    low purchase rate it implies. It rises monotonically with T while nothing is bought.
    """
    t, xs, ages = (np.asarray(v, dtype=np.float64) for v in (horizon, x, age))
    alive = probability_alive(params, xs, t_x, ages)
    quiet_if_alive = np.exp(
        (params.r + xs) * (np.log(params.alpha + ages) - np.log(params.alpha + ages + t))
    )
    return np.asarray(1.0 - alive * (1.0 - quiet_if_alive), dtype=np.float64)


def age_when_no_purchase_probability_reaches(
    params: BgNbdParams,
    x: int,
    t_x: float,
    probability: float,
    horizon: float,
    *,
    max_age: float,
) -> float:
    """The smallest age T >= t_x (model units) where P(no purchase in horizon) >= `probability`.

    The probability only rises with silence, so a bisection on T finds it to a thousandth of a
    unit; `max_age` caps the search (returned when the threshold is never reached before it).
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(
            f"a probability threshold lies strictly between 0 and 1, got {probability}"
        )

    def reached(age: float) -> bool:
        return bool(probability_no_purchase(params, horizon, x, t_x, age) >= probability)

    low, high = t_x, max(t_x, 1.0)
    if reached(low):
        return low
    while not reached(high):
        if high >= max_age:
            return max_age
        low, high = high, min(high * 2.0, max_age)
    while high - low > 1e-3:
        middle = (low + high) / 2.0
        low, high = (low, middle) if reached(middle) else (middle, high)
    return high
