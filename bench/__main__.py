"""python -m bench [section ...] [--events N] [--results PATH] [--no-durable]

Starts a private embedded PostgreSQL + broker, runs the named sections (all by
default) on it, prints each section's table and merges the figures into
bench-results.json. Targets are reported as PASS/MISS; they never fail the run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import foundation
from bench.infra import BenchInfra, embedded_infra
from bench.report import merge_results

Section = Callable[[BenchInfra, int], Awaitable[dict[str, Any]]]
SECTIONS: dict[str, Section] = {
    foundation.SECTION: foundation.run,
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
        "--results", type=Path, default=Path("bench-results.json"), help="merged JSON figures"
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


async def _run_sections(names: list[str], events: int, durable: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with embedded_infra(durable) as infra:
        print(infra.describe())
        for name in names:
            started = time.perf_counter()
            figures.update(await SECTIONS[name](infra, events))
            print(f"{name}: done in {time.perf_counter() - started:.0f}s")
    return figures


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = args.sections or list(SECTIONS)
    figures = asyncio.run(_run_sections(names, args.events, args.durable))
    merge_results(args.results, figures)
    print(f"figures merged into {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
