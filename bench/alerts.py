"""Alerts section: a lapse scan costs O(customers due), not O(customers); the BG/NBD fit time.

1. Customer summaries are loaded straight into PostgreSQL with one INSERT ... SELECT over
   generate_series (100,000, then up to 1,000,000 rows), every one with a pending lapse check
   in the future; then K customers are made due (their silence passed three weekly gaps).
2. `AlertScanner.scan_due` is timed on K = 1,000 due among 100,000 customers and among
   1,000,000, and on K = 10,000 and K = 0 among 1,000,000. Each due customer gets a real alert
   (row, outbox event, rescheduled check), so the time is the whole scan's work.
3. `fit_bgnbd` is timed on 100,000 customers simulated from known BG/NBD parameters.

Target (the issue's "grows with the number due, not with the number of customers"): the
median 1k-due scan among 1M customers takes at most twice as long as among 100k.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import numpy as np

from bench.infra import BenchInfra
from bench.report import verdict
from services.alerts.clock.service import FixedClock
from services.alerts.domain.bgnbd import fit_bgnbd
from services.alerts.lapse.service import AlertScanner
from services.alerts.segments.service import refresh_segments
from shared.db import asyncpg_dsn, create_engine

SECTION = "alerts"
NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
SMALL, LARGE = 100_000, 1_000_000
REPEATS = 3
MERCHANTS = 50
FIT_CUSTOMERS = 100_000
TRUE_PARAMS = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}  # CDNOW-like, alpha in weeks

# Every customer: five weekly visits of 60.00, the last `$3` days before NOW, so the own-rhythm
# check is due 21 days after it. Customers not due bought 2 days ago.
_LOAD = """
INSERT INTO customer_activity (
    customer_id, first_purchase_at, last_purchase_at, purchase_count, visit_count, spend_minor,
    currency, gap_count, gap_mean_days, gap_sum_squared_deviations, merchant_ids,
    merchant_spend_minor, first_merchant_id, next_check_at, follow_up_raised_at)
SELECT 'c' || lpad(i::text, 8, '0'),
       $1::timestamptz - interval '30 days', $1::timestamptz - interval '2 days', 5, 5, 30000,
       'EUR', 4, 7.0, 0.0, ARRAY['m' || (i % $4)],
       jsonb_build_object('m' || (i % $4), 30000 + i % 997), 'm' || (i % $4),
       $1::timestamptz + interval '19 days', $1::timestamptz - interval '23 days'
FROM generate_series($2::int, $3::int - 1) AS i
"""
_MAKE_DUE = """
UPDATE customer_activity AS ca
SET first_purchase_at = $1::timestamptz - interval '50 days',
    last_purchase_at = $1::timestamptz - interval '22 days',
    next_check_at = $1::timestamptz - interval '1 day'
FROM unnest($2::text[]) AS d(id) WHERE ca.customer_id = d.id
"""


async def _load(url: str, start: int, stop: int) -> float:
    began = time.perf_counter()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(_LOAD, NOW, start, stop, MERCHANTS)
        await conn.execute("VACUUM ANALYZE customer_activity")
    finally:
        await conn.close()
    return time.perf_counter() - began


async def _make_due(url: str, population: int, count: int, rng: np.random.Generator) -> None:
    """`count` customers never alerted before become due (their check is a day late)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        alerted = {r[0] for r in await conn.fetch("SELECT customer_id FROM alerts")}
        picked: list[str] = []
        while len(picked) < count:
            for i in rng.choice(population, size=count * 2, replace=False):
                name = f"c{int(i):08d}"
                if name not in alerted and len(picked) < count:
                    alerted.add(name)
                    picked.append(name)
        await conn.execute(_MAKE_DUE, NOW, picked)
        await conn.execute("ANALYZE customer_activity")
    finally:
        await conn.close()


async def _scan(engine: Any) -> tuple[float, int]:
    scanner = AlertScanner(engine, FixedClock(NOW), batch_size=500)
    began = time.perf_counter()
    outcome = await scanner.scan_due(NOW)
    return time.perf_counter() - began, outcome.raised


async def _scans(
    url: str, engine: Any, population: int, due: int, repeats: int, rng: np.random.Generator
) -> dict[str, Any]:
    times, raised = [], 0
    for _ in range(repeats):
        if due:
            await _make_due(url, population, due, rng)
        seconds, count = await _scan(engine)
        times.append(seconds)
        raised += count
    return {
        "customers": population,
        "due": due,
        "scans": repeats,
        "median_s": statistics.median(times),
        "alerts_raised": raised,
    }


def simulate_customers(
    count: int, rng: np.random.Generator
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(x, t_x, T) in weeks for `count` customers buying as BG/NBD assumes."""
    p = TRUE_PARAMS
    rate = rng.gamma(p["r"], 1 / p["alpha"], count)
    leave = rng.beta(p["a"], p["b"], count)
    age = rng.uniform(26, 78, count)
    x, last, moment = np.zeros(count), np.zeros(count), np.zeros(count)
    active = np.ones(count, dtype=bool)
    while active.any():
        moment[active] += rng.exponential(1 / np.maximum(rate[active], 1e-9))
        bought = active & (moment <= age)
        x[bought] += 1
        last[bought] = moment[bought]
        gone = rng.random(count) < leave
        active = bought & ~gone
    return x, last, age


def _fit_time(rng: np.random.Generator) -> list[dict[str, Any]]:
    """The fit on exact times, and at day resolution as the service's refit groups them."""
    x, t_x, age = simulate_customers(FIT_CUSTOMERS, rng)
    days = (x, np.round(t_x * 7) / 7, np.round(age * 7) / 7)
    found = []
    for label, (xs, recency, ages) in (("exact times", (x, t_x, age)), ("day resolution", days)):
        began = time.perf_counter()
        params = fit_bgnbd(xs, recency, ages, time_unit=timedelta(weeks=1))
        found.append(
            {
                "label": label,
                "customers": FIT_CUSTOMERS,
                "seconds": time.perf_counter() - began,
                "distinct_histories": len(set(zip(xs, recency, ages, strict=True))),
                "fitted": {name: round(getattr(params, name), 3) for name in TRUE_PARAMS},
                "true": TRUE_PARAMS,
            }
        )
    return found


def _print(rows: list[dict[str, Any]], load: dict[str, float], fits: list[dict[str, Any]]) -> None:
    print()
    print("alerts: lapse scan by due time (median of the scans; each due customer is alerted)")
    header = f"{'customers':>10} {'due':>7} {'scans':>5} {'scan s':>8} {'ms/due':>8} {'raised':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        per_due = f"{1000 * r['median_s'] / r['due']:8.3f}" if r["due"] else f"{'-':>8}"
        print(
            f"{r['customers']:>10,} {r['due']:>7,} {r['scans']:>5} {r['median_s']:>8.3f}"
            f" {per_due} {r['alerts_raised']:>7,}"
        )
    for what, seconds in load.items():
        print(f"load {what}: {seconds:.1f}s")
    for fit in fits:
        print(
            f"BG/NBD fit on {fit['customers']:,} customers, {fit['label']}"
            f" ({fit['distinct_histories']:,} distinct histories): {fit['seconds']:.2f}s;"
            f" fitted {fit['fitted']} (true {fit['true']})"
        )


async def run(infra: BenchInfra, events: int) -> dict[str, Any]:
    """`events` is the foundation's knob; this section's sizes are fixed by the issue."""
    rng = np.random.default_rng(5)
    url = await infra.fresh_database("alerts")
    engine = create_engine(url, pool_size=4)
    load: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    try:
        load[f"{SMALL:,} summaries"] = await _load(url, 0, SMALL)
        refreshed = time.perf_counter()
        await refresh_segments(engine, FixedClock(NOW))  # the hourly job, before any scan
        load["segment refresh (100k)"] = time.perf_counter() - refreshed
        rows.append(await _scans(url, engine, SMALL, 1_000, REPEATS, rng))
        load[f"{LARGE - SMALL:,} more summaries"] = await _load(url, SMALL, LARGE)
        rows.append(await _scans(url, engine, LARGE, 0, REPEATS, rng))
        rows.append(await _scans(url, engine, LARGE, 1_000, REPEATS, rng))
        rows.append(await _scans(url, engine, LARGE, 10_000, 1, rng))
    finally:
        await engine.dispose()
    fit = _fit_time(rng)
    _print(rows, load, fit)
    small, large = rows[0]["median_s"], rows[2]["median_s"]
    ok = large <= 2 * small
    print(
        f"target: 1k due among 1M within 2x of 1k due among 100k: {large:.3f}s vs {small:.3f}s"
        f" ({large / small:.2f}x) {verdict(ok)}"
    )
    return {
        SECTION: {
            "scans": rows,
            "load_seconds": load,
            "fit": fit,
            "scan_growth_1m_vs_100k": large / small,
            "target_scan_independent_of_customers": verdict(ok),
        }
    }
