"""python -m bench [section ...] [--events N] [--results PATH] [--no-durable]

Starts a private embedded PostgreSQL + broker, runs the named sections (all by
default) on it and prints each section's own table; then one summary table of
every section (throughput, latency percentiles, ratio to the raw broker and
PostgreSQL rates of this run, targets) and the same rows, the run's settings and
each section's figures in bench-results.json (replaced on every run).
Targets are reported as PASS/MISS; they never fail the run. A section that
crashes is reported in the summary, the others still run, and the exit status
is 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from bench import alerts, backtest, foundation, points, rewards, scaleout
from bench.infra import BROKER_NAMES, BenchInfra, embedded_infra
from bench.report import write_results
from bench.summary import (
    baselines_of,
    results_document,
    section_figures,
    summary_rows,
    summary_table,
)
from tooling.devinfra import broker_from_environment

Section = Callable[[BenchInfra, int], Awaitable[dict[str, Any]]]
SECTIONS: dict[str, Section] = {
    foundation.SECTION: foundation.run,
    alerts.SECTION: alerts.run,
    points.SECTION: points.run,
    rewards.SECTION: rewards.run,
    backtest.SECTION: backtest.run,
    scaleout.SECTION: scaleout.run,
}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="section",
        help=f"one of {', '.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--events", type=int, default=200_000, help="events per measurement")
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("bench-results.json"),
        help="JSON figures of this run (the file is replaced)",
    )
    parser.add_argument(
        "--durable",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="PostgreSQL with fsync and synchronous commit (the realistic setting; default)",
    )
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be positive")
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    return args


async def _run_sections(
    names: list[str], events: int, durable: bool, seconds: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """Each section's figures, flattened, in run order; a crash becomes {"error": ...}."""
    sections: dict[str, dict[str, Any]] = {}
    with embedded_infra(durable) as infra:
        print(infra.describe())
        for name in names:
            started = time.perf_counter()
            try:
                sections[name] = section_figures(name, await SECTIONS[name](infra, events))
            except Exception as error:  # one broken section must not lose the others' figures
                traceback.print_exc()
                sections[name] = {"error": f"{type(error).__name__}: {error}"}
            seconds[name] = round(time.perf_counter() - started, 1)
            print(f"{name}: done in {seconds[name]:.0f}s")
    return sections


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "architecture": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = args.sections or list(SECTIONS)
    started_at, seconds = datetime.now(UTC), dict[str, float]()
    # The services run on uvloop (uvicorn picks it when installed, and it is a dependency),
    # so the consumers measured in this process do too: on asyncio's own loop the points
    # consumer spent ~7 µs more per event in the event loop and the driver's callbacks
    # (`python -m bench points --events 60000`, untimed phase 29.3 against 22.5 µs).
    sections = uvloop.run(_run_sections(names, args.events, args.durable, seconds))
    rows = summary_rows(sections)
    print()
    print("\n".join(summary_table(rows, baselines_of(sections))))
    run = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sections": names,
        "section_seconds": seconds,
        "events": args.events,
        "postgres_durable": args.durable,
        "infrastructure": f"embedded PostgreSQL and {BROKER_NAMES[broker_from_environment()]}",
        "machine": _machine(),
    }
    write_results(args.results, results_document(run, sections, rows))
    print(f"figures written to {args.results}")
    return 1 if any("error" in figures for figures in sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
