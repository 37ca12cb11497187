"""Backtest section: the lapse-rule backtest on CDNOW (its figures against issue 14's targets)
and on 1,000,000 synthetic customers (its speed).

1. CDNOW 1/10 sample (tests/data/cdnow_sample.txt), as of 1997-09-30, horizon 39 weeks:
   read + backtest timed (median of 3); the figures are printed beside the targets.
2. 1,000,000 customers simulated from CDNOW-like BG/NBD parameters (first purchase in the
   first 12 weeks, 78 weeks observed, a few million purchases over 50 merchants), backtested
   as of week 39 with a 39-week horizon: the whole run (facts, BG/NBD refit, every rule, AUCs,
   per-merchant scorecards) timed once.

Targets: CDNOW backtest under 2 s; model score AUC >= 0.80; every enabled rule's precision
above the base rate; the combined policy at precision >= 0.85 with recall >= 0.85.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.infra import BenchInfra
from bench.report import verdict
from services.alerts.backtest.service import EPOCH, backtest, read_transactions, report_lines
from services.alerts.domain.backtest import (
    BacktestResult,
    PurchaseLog,
    RuleScore,
    Scorecard,
    run_backtest,
)
from services.alerts.domain.lapse import LapseRules

SECTION = "backtest"
CDNOW = Path(__file__).parents[1] / "tests" / "data" / "cdnow_sample.txt"
CDNOW_AS_OF = datetime(1997, 9, 30, tzinfo=UTC)
HORIZON_DAYS = 273
SYNTHETIC_CUSTOMERS = 1_000_000
TRUE_PARAMS = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}  # CDNOW-like, alpha in weeks
_MAX_PURCHASES = 30
_CHUNK = 100_000


def _cdnow() -> tuple[float, BacktestResult]:
    seconds = []
    for _ in range(3):
        began = time.perf_counter()
        result = backtest(read_transactions(CDNOW), CDNOW_AS_OF, HORIZON_DAYS)
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), result


def synthetic_log(customers: int, seed: int = 14) -> PurchaseLog:
    """BG/NBD buyers: Poisson purchases at a gamma rate, dropping out after a repeat purchase
    with a beta probability; times in days from 2025-01-01, 78 weeks observed."""
    rng = np.random.default_rng(seed)
    origin = (datetime(2025, 1, 1, tzinfo=UTC) - EPOCH) / timedelta(days=1)
    parts: list[tuple[np.ndarray, ...]] = []
    for start in range(0, customers, _CHUNK):
        n = min(_CHUNK, customers - start)
        rate = rng.gamma(TRUE_PARAMS["r"], 1.0 / TRUE_PARAMS["alpha"], n)  # per week
        drop = rng.beta(TRUE_PARAMS["a"], TRUE_PARAMS["b"], n)
        first = rng.uniform(0, 12, n)
        gaps = rng.exponential(1.0, (n, _MAX_PURCHASES - 1)) / np.maximum(rate, 1e-9)[:, None]
        weeks = np.concatenate([first[:, None], first[:, None] + np.cumsum(gaps, 1)], axis=1)
        repeats_before_leaving = rng.geometric(drop)
        alive = np.arange(_MAX_PURCHASES)[None, :] <= repeats_before_leaving[:, None]
        keep = alive & (weeks < 78)
        who, _ = np.nonzero(keep)
        parts.append(
            (
                who.astype(np.int64) + start,
                origin + weeks[keep] * 7.0,
                rng.integers(500, 20_000, who.shape[0]),
                (who + start) % 50,
            )
        )
    return PurchaseLog(
        customer=np.concatenate([p[0] for p in parts]),
        day=np.concatenate([p[1] for p in parts]),
        amount_minor=np.concatenate([p[2] for p in parts]).astype(np.int64),
        merchant=np.concatenate([p[3] for p in parts]).astype(np.int64),
        merchant_names=tuple(f"m{k}" for k in range(50)),
    )


def _synthetic() -> dict[str, Any]:
    log = synthetic_log(SYNTHETIC_CUSTOMERS)
    origin = (datetime(2025, 1, 1, tzinfo=UTC) - EPOCH) / timedelta(days=1)
    began = time.perf_counter()
    result = run_backtest(log, origin + 39 * 7, HORIZON_DAYS, {"*": LapseRules()})
    seconds = time.perf_counter() - began
    card = result.overall
    return {
        "customers": card.customers,
        "purchases": int(log.customer.shape[0]),
        "seconds": seconds,
        "base_rate": card.base_rate,
        "model_auc": _auc(card, "no_purchase_probability"),
    }


def _rule(card: Scorecard, name: str) -> RuleScore:
    return next(r for r in card.rules if r.name == name)


def _auc(card: Scorecard, name: str) -> float | None:
    return next(s.auc for s in card.scores if s.name == name)


def _targets(seconds: float, card: Scorecard) -> dict[str, bool]:
    base = card.base_rate or 0.0
    enabled = [r for r in card.rules if r.enabled and not r.name.startswith("combined")]
    combined = _rule(card, "combined (any enabled rule)")
    return {
        "cdnow_under_2s": seconds < 2.0,
        "model_auc_0_80": (_auc(card, "no_purchase_probability") or 0) >= 0.80,
        "rules_above_base_rate": all((r.precision or 0) > base for r in enabled),
        "combined_precision_recall_0_85": (combined.precision or 0) >= 0.85
        and (combined.recall or 0) >= 0.85,
    }


async def run(infra: BenchInfra, events: int) -> dict[str, Any]:
    """No broker or database needed: the backtest is numerics on a purchase log."""
    del infra, events
    seconds, result = _cdnow()
    card = result.overall
    print()
    print("\n".join(report_lines(result, CDNOW_AS_OF)))
    targets = _targets(seconds, card)
    synthetic = _synthetic()
    print(
        f"\nbacktest: CDNOW ({card.customers:,} customers) {seconds:.2f}s (median of 3);"
        f" {synthetic['customers']:,} synthetic customers ({synthetic['purchases']:,}"
        f" purchases) {synthetic['seconds']:.1f}s, model AUC {synthetic['model_auc']:.3f}"
    )
    for name, ok in targets.items():
        print(f"  target {name}: {verdict(ok)}")
    combined = _rule(card, "combined (any enabled rule)")
    return {
        SECTION: {
            "cdnow_seconds": seconds,
            "cdnow_model_auc": _auc(card, "no_purchase_probability"),
            "cdnow_recency_auc": _auc(card, "days_since_last_purchase"),
            "cdnow_hindsight_ceiling_auc": result.hindsight_ceiling_auc,
            "cdnow_combined_precision": combined.precision,
            "cdnow_combined_recall": combined.recall,
            "synthetic_customers": synthetic["customers"],
            "synthetic_seconds": synthetic["seconds"],
            **{f"target_{name}": verdict(ok) for name, ok in targets.items()},
        }
    }
