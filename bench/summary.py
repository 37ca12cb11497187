"""One table for every section of a `python -m bench` run, and the same rows for the JSON file.

Each section returns its figures in its own shape: flat `section.key` names (foundation,
points), one dict under the section's name (alerts) or bare keys (rewards). `section_figures`
brings each to one flat dict, and a builder per section picks the measurements a reader
compares across sections. Builders read figures defensively: a section still being changed
loses a row, never the summary. Any `target_*` verdict a builder did not place gets a row of
its own, so no PASS/MISS is ever dropped.

Ratios are to the raw broker consume and raw PostgreSQL insert rates of the foundation section
of the same invocation only: a rate from another run, on another load of a shared machine,
would make the ratio meaningless.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bench import alerts, foundation, points, rewards

PASS, MISS = "PASS", "MISS"


@dataclass(frozen=True)
class Target:
    text: str
    verdict: str  # PASS or MISS


@dataclass(frozen=True)
class Baselines:
    """The raw rates of the foundation section run in the same invocation."""

    broker_eps: float
    postgres_eps: float
    postgres_form: str = ""


@dataclass(frozen=True)
class Row:
    section: str
    measurement: str
    per_second: float | None = None
    unit: str = "events"
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    targets: tuple[Target, ...] = ()
    note: str = ""
    # A rate of events through the broker and PostgreSQL, comparable with the raw rates;
    # HTTP requests or model fits are not.
    compared: bool = True
    ratio_broker: float | None = None
    ratio_postgres: float | None = None

    def with_ratios(self, baselines: Baselines | None) -> Row:
        if baselines is None or not self.compared or self.per_second is None:
            return self
        return replace(
            self,
            ratio_broker=_ratio(self.per_second, baselines.broker_eps),
            ratio_postgres=_ratio(self.per_second, baselines.postgres_eps),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "measurement": self.measurement,
            "per_second": _finite(self.per_second),
            "unit": self.unit,
            "p50_ms": _finite(self.p50_ms),
            "p95_ms": _finite(self.p95_ms),
            "p99_ms": _finite(self.p99_ms),
            "ratio_to_raw_broker": _rounded(self.ratio_broker, 4),
            "ratio_to_raw_postgres": _rounded(self.ratio_postgres, 4),
            "targets": [{"target": t.text, "verdict": t.verdict} for t in self.targets],
            "note": self.note,
        }


def _ratio(value: float, baseline: float) -> float | None:
    return value / baseline if baseline > 0 and math.isfinite(value) else None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _rounded(value: float | None, digits: int) -> float | None:
    finite = _finite(value)
    return round(finite, digits) if finite is not None else None


# -- reading a section's figures ----------------------------------------------
def section_figures(name: str, returned: Mapping[str, Any]) -> dict[str, Any]:
    """`returned` as one flat dict without the `name.` prefix, whatever its shape."""
    if set(returned) == {name} and isinstance(returned[name], Mapping):
        return dict(returned[name])
    prefix = f"{name}."
    return {key.removeprefix(prefix): value for key, value in returned.items()}


class Figures:
    """One section's flat figures; remembers which target verdicts were placed in a row."""

    def __init__(self, section: str, values: Mapping[str, Any]) -> None:
        self.section = section
        self.values = values
        self.placed: set[str] = set()

    def number(self, key: str) -> float | None:
        value = self.values.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    def target(self, key: str, text: str) -> tuple[Target, ...]:
        self.placed.add(key)
        found = verdict_of(self.values.get(key))
        return (Target(text, found),) if found else ()

    def unplaced_targets(self) -> list[str]:
        return [k for k in self.values if k.startswith("target_") and k not in self.placed]


def verdict_of(value: Any) -> str | None:
    """PASS/MISS from a section's boolean or already-worded verdict; None if neither."""
    if isinstance(value, bool):
        return PASS if value else MISS
    if isinstance(value, str) and value.upper() in (PASS, MISS):
        return value.upper()
    return None


def _rate_note(figures: Figures, key: str) -> str:
    parts = []
    steady = figures.number(f"{key}_steady_eps")
    if steady is not None:
        parts.append(f"steady {steady:,.0f}/s")
    parts.append(_startup_note(figures, key))
    return "; ".join(part for part in parts if part)


def _startup_note(figures: Figures, key: str) -> str:
    """Start to first applied batch, with the group join's share and the broker's name."""
    total = figures.number(f"{key}_startup_s")
    if total is None:
        first = figures.number(f"{key}_first_batch_s")
        return f"1st batch {first:.2f} s" if first is not None else ""
    join = figures.number(f"{key}_startup.group_join_s")
    broker = figures.values.get(f"{key}_startup_broker")
    joined = f" (join {join:.2f})" if join is not None else ""
    on = f" on {broker}" if isinstance(broker, str) else ""
    return f"1st batch {total:.2f} s{joined}{on}"


# -- one builder per section --------------------------------------------------
_FOUNDATION = (
    ("raw_consume", "raw broker consume (getmany, no decode)"),
    ("raw_insert_unnest", "raw PG insert (INSERT..unnest, 1 tx/batch)"),
    ("raw_insert_executemany", "raw PG insert (executemany, 1 tx/batch)"),
    ("runtime_noop", "runtime, no-op handler"),
    ("runtime_one_row", "runtime, one-row handler"),
)


def foundation_rows(figures: Figures) -> list[Row]:
    rows = []
    for key, label in _FOUNDATION:
        eps = figures.number(f"{key}_eps")
        if eps is None:
            continue
        targets: tuple[Target, ...] = ()
        if key == "runtime_noop":
            targets = figures.target(
                "target_noop_steady_eps_pass",
                f">= {foundation.TARGET_NOOP_EPS:,} events/s steady",
            )
        if key == "runtime_one_row":
            targets = figures.target(
                "target_one_row_steady_eps_pass",
                f">= {foundation.TARGET_ONE_ROW_EPS:,} events/s steady",
            )
        rows.append(
            Row(figures.section, label, eps, targets=targets, note=_rate_note(figures, key))
        )
    return rows


def alerts_rows(figures: Figures) -> list[Row]:
    scans = [_scan_row(figures, scan) for scan in _records(figures.values.get("scans"))]
    return scans + [_fit_row(figures.section, fit) for fit in _records(figures.values.get("fit"))]


def _records(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _scan_row(figures: Figures, scan: Mapping[str, Any]) -> Row:
    customers, due = int(scan.get("customers", 0)), int(scan.get("due", 0))
    seconds = float(scan.get("median_s", math.nan))
    targets: tuple[Target, ...] = ()
    if (customers, due) == (alerts.LARGE, 1_000):
        growth = figures.number("scan_growth_1m_vs_100k")
        grown = f" ({growth:.2f}x)" if growth is not None else ""
        targets = figures.target(
            "target_scan_independent_of_customers",
            f"<= 2x the scan among {alerts.SMALL:,}{grown}",
        )
    return Row(
        figures.section,
        f"lapse scan, {due:,} due among {customers:,}",
        due / seconds if due and seconds > 0 else None,
        unit="alerts",
        targets=targets,
        note=f"median {seconds:.3f} s of {_scans(scan.get('scans'))}",
    )


def _scans(count: Any) -> str:
    return "1 scan" if count == 1 else f"{count} scans"


def _fit_row(section: str, fit: Mapping[str, Any]) -> Row:
    customers, seconds = int(fit.get("customers", 0)), float(fit.get("seconds", math.nan))
    return Row(
        section,
        f"BG/NBD fit, {customers:,} customers ({fit.get('label', '?')})",
        customers / seconds if seconds > 0 else None,
        unit="customers",
        compared=False,
        note=f"{seconds:.2f} s",
    )


def points_rows(figures: Figures) -> list[Row]:
    rows = []
    committed = figures.number("accrual_committed_eps")
    if committed is not None:
        steady = figures.number("accrual_committed_steady_eps")
        note = f"steady {steady:,.0f}/s" if steady is not None else ""
        rows.append(
            Row(figures.section, "accrual: events -> balances committed", committed, note=note)
        )
    relayed = figures.number("accrual_relayed_eps")
    if relayed is not None:
        messages = figures.number("accrual_messages_relayed")
        steady = figures.number("accrual_relayed_steady_eps")
        notes = [
            f"steady {steady:,.0f}/s" if steady is not None else "",
            f"{messages:,.0f} messages relayed" if messages is not None else "",
            _startup_note(figures, "accrual"),
        ]
        rows.append(
            Row(
                figures.section,
                "accrual: events -> outbox relayed",
                relayed,
                targets=figures.target(
                    "target_accrual_steady_eps_pass", f">= {points.TARGET_EPS:,} events/s steady"
                )
                + figures.target(
                    "target_accrual_stretch_steady_eps_pass",
                    f"stretch >= {points.STRETCH_EPS:,} events/s steady",
                ),
                note="; ".join(n for n in notes if n),
            )
        )
    achieved = figures.number("balance_achieved_rps")
    if achieved is not None:
        rows.append(_balance_row(figures, achieved))
    return rows


def _balance_row(figures: Figures, achieved: float) -> Row:
    offered = figures.number("balance_rate_rps") or float(points.RATE)
    # the 2-process run (balance_2proc_*) stays in bench-results.json, without a target
    errors, worst = figures.number("balance_errors"), figures.number("balance_max_ms")
    notes = [f"{errors:,.0f} errors" if errors is not None else ""]
    notes.append(f"max {worst:,.1f} ms" if worst is not None else "")
    return Row(
        figures.section,
        f"balance GET over HTTP, {offered:,.0f}/s offered",
        achieved,
        unit="requests",
        p50_ms=figures.number("balance_p50_ms"),
        p95_ms=figures.number("balance_p95_ms"),
        p99_ms=figures.number("balance_p99_ms"),
        targets=figures.target(
            "target_balance_p99_pass",
            f"p99 < {points.TARGET_P99_MS:g} ms at {offered:,.0f}/s, no errors",
        ),
        note="; ".join(n for n in notes if n),
        compared=False,
    )


def rewards_rows(figures: Figures) -> list[Row]:
    eps = figures.number("throughput_eps")
    if eps is None:
        return []
    done, sent = figures.number("compensated"), figures.number("incidents")
    offered = figures.number("publish_rate_rps")
    achieved = figures.number("publish_achieved_rps")
    kept_up = figures.values.get("kept_up")
    notes = [
        f"{done:,.0f} of {sent:,.0f} incidents compensated" if None not in (done, sent) else "",
        f"published {achieved:,.0f}/s" if achieved is not None else "",
        {True: "kept up", False: "did NOT keep up"}.get(kept_up, "")
        if isinstance(kept_up, bool)
        else "",
        _startup_note(figures, "consumer"),
    ]
    paced = f", {offered:,.0f}/s offered" if offered is not None else ""
    return [
        Row(
            figures.section,
            f"incident -> compensation.granted{paced}",
            eps,
            p50_ms=figures.number("latency_p50_ms"),
            p95_ms=figures.number("latency_p95_ms"),
            p99_ms=figures.number("latency_p99_ms"),
            targets=figures.target(
                "target_compensation_p99_pass",
                f"p99 < {rewards.TARGET_P99_MS / 1000:g} s at {rewards.RATE:,}/s, all compensated",
            ),
            note="; ".join(n for n in notes if n),
        )
    ]


def other_rows(figures: Figures) -> list[Row]:
    """A section without a builder: every `*_eps` figure is a row."""
    return [
        Row(figures.section, key.removesuffix("_eps"), value)
        for key in figures.values
        if key.endswith("_eps") and (value := figures.number(key)) is not None
    ]


BUILDERS: dict[str, Callable[[Figures], list[Row]]] = {
    foundation.SECTION: foundation_rows,
    alerts.SECTION: alerts_rows,
    points.SECTION: points_rows,
    rewards.SECTION: rewards_rows,
}


# -- the summary --------------------------------------------------------------
def baselines_of(sections: Mapping[str, Mapping[str, Any]]) -> Baselines | None:
    """The raw rates, if the foundation section ran (and finished) in this invocation."""
    figures = Figures(foundation.SECTION, sections.get(foundation.SECTION, {}))
    broker, postgres = figures.number("raw_consume_eps"), figures.number("raw_insert_eps")
    if broker is None or postgres is None:
        return None
    form = figures.values.get("raw_insert_form")
    return Baselines(broker, postgres, form if isinstance(form, str) else "")


def section_rows(name: str, values: Mapping[str, Any]) -> list[Row]:
    if "error" in values:
        return [Row(name, "section failed", note=str(values["error"]), compared=False)]
    figures = Figures(name, values)
    rows = BUILDERS.get(name, other_rows)(figures)
    rows += [
        Row(name, key, targets=(Target(key, verdict),), compared=False)
        for key in figures.unplaced_targets()
        if (verdict := verdict_of(values[key]))
    ]
    return rows


def summary_rows(sections: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """Every section's rows in run order, with ratios to this run's raw rates."""
    baselines = baselines_of(sections)
    return [
        row.with_ratios(baselines)
        for name, values in sections.items()
        for row in section_rows(name, values)
    ]


# -- the printed table --------------------------------------------------------
def _ms(value: float | None) -> str:
    return f"{value:,.1f}" if value is not None and math.isfinite(value) else "-"


def _share(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if value >= 0.01 else f"{value:.2%}"


def _rate(row: Row) -> str:
    if row.per_second is None or not math.isfinite(row.per_second):
        return "-"
    return f"{row.per_second:,.0f} {row.unit}/s"


def summary_table(rows: list[Row], baselines: Baselines | None) -> list[str]:
    """The lines of the one summary table; a row's further targets continue below it."""
    header = ["section", "measurement", "throughput", "p50 ms", "p95 ms", "p99 ms"]
    header += ["/ broker", "/ PG", "target", "", "note"]
    cells = [cell for row in rows for cell in _cells(row)]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header) - 1)]
    left = {0, 1, 8, 9}

    def line(values: list[str]) -> str:
        padded = [
            v.ljust(w) if i in left else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=False))
        ]
        return "  ".join([*padded, values[-1]]).rstrip()

    ruled = line(header)
    body = [ruled, "-" * len(ruled), *(line(values) for values in cells)]
    return [*_preamble(baselines), *body, *_legend()]


def _cells(row: Row) -> list[list[str]]:
    first = row.targets[0] if row.targets else Target("-", "")
    latency = [_ms(row.p50_ms), _ms(row.p95_ms), _ms(row.p99_ms)]
    ratios = [_share(row.ratio_broker), _share(row.ratio_postgres)]
    lines = [
        [
            row.section,
            row.measurement,
            _rate(row),
            *latency,
            *ratios,
            first.text,
            first.verdict,
            row.note,
        ]
    ]
    lines += [[*[""] * 8, more.text, more.verdict, ""] for more in row.targets[1:]]
    return lines


def _preamble(baselines: Baselines | None) -> list[str]:
    if baselines is None:
        return ["summary (no ratios: the foundation section did not run in this invocation)"]
    form = f", {baselines.postgres_form}" if baselines.postgres_form else ""
    return [
        f"summary (ratios to this run's raw broker consume {baselines.broker_eps:,.0f} events/s"
        f" and raw PostgreSQL insert {baselines.postgres_eps:,.0f} events/s{form})"
    ]


def _legend() -> list[str]:
    return [
        "throughput: over the whole measurement; latency percentiles where the section measures"
        " them; / broker, / PG: throughput as a share of the raw rates (event rates only);",
        "targets are reported, never enforced.",
    ]


# -- bench-results.json -------------------------------------------------------
def results_document(
    run: Mapping[str, Any], sections: Mapping[str, Mapping[str, Any]], rows: list[Row]
) -> dict[str, Any]:
    """What the table shows (`rows`), how it was run (`run`) and each section's own figures."""
    return {
        "run": dict(run),
        "rows": [row.as_json() for row in rows],
        "sections": {name: dict(values) for name, values in sections.items()},
    }
