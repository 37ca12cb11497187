"""Timing of a stream of batches, the printed table and bench-results.json."""

from __future__ import annotations

import gc
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WARM_UP_SHARE = 0.10  # the steady-state rate ignores the first 10% of events


@dataclass(frozen=True)
class Rate:
    """One measurement: `events` done in `seconds` from start; steady rate after warm-up."""

    name: str
    events: int
    seconds: float
    steady_eps: float
    first_batch_s: float = 0.0  # start-up: connect, group join, first fetch and apply
    note: str = ""

    @property
    def eps(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Progress:
    """Counts events as batches complete; started at construction (perf_counter)."""

    target: int
    started: float = field(default_factory=time.perf_counter)
    count: int = 0
    marks: list[tuple[float, int]] = field(default_factory=list)

    def restart(self) -> None:
        self.started, self.count, self.marks = time.perf_counter(), 0, []

    def add(self, events: int) -> None:
        self.count += events
        self.marks.append((time.perf_counter(), self.count))

    @property
    def done(self) -> bool:
        return self.count >= self.target

    def rate(self, name: str, note: str = "") -> Rate:
        if not self.marks:
            return Rate(name, 0, 0.0, 0.0, note=note)
        end, total = self.marks[-1]
        first = self.marks[0][0] - self.started
        return Rate(name, total, end - self.started, self._steady(), first, note)

    def _steady(self) -> float:
        """Rate between the batch that passed the warm-up share and the last batch."""
        return self.steady_until(self.marks[-1][0])

    def steady_until(self, end: float) -> float:
        """Rate of the events after the warm-up share: from the batch that passed it until
        `end`, a perf_counter time at or after the last batch (e.g. when the output of
        every event had been relayed)."""
        if not self.marks:
            return 0.0
        total = self.marks[-1][1]
        threshold = self.target * WARM_UP_SHARE
        begin, counted = next((m for m in self.marks if m[1] >= threshold), self.marks[-1])
        if end <= begin:
            return total / (end - self.started) if end > self.started else 0.0
        return (total - counted) / (end - begin)


@contextmanager
def garbage_collection_time() -> Iterator[list[float]]:
    """Seconds spent in the cyclic garbage collector while the block runs (in [0])."""
    spent = [0.0]
    began = [0.0]

    def clock(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - began[0]

    gc.callbacks.append(clock)
    try:
        yield spent
    finally:
        gc.callbacks.remove(clock)


def ratio_text(value: float, baseline: float) -> str:
    return f"{value / baseline:6.1%}" if baseline > 0 else "   n/a"


def print_table(title: str, rates: list[Rate], baseline: float) -> None:
    print()
    print(title)
    header = (
        f"{'measurement':<52} {'events/s':>10} {'steady/s':>10} {'ratio':>7} {'s':>7}"
        f" {'1st batch s':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in rates:
        print(
            f"{r.name:<52} {r.eps:>10,.0f} {r.steady_eps:>10,.0f} "
            f"{ratio_text(r.eps, baseline):>7} {r.seconds:>7.2f} {r.first_batch_s:>11.2f}"
            + (f"  {r.note}" if r.note else "")
        )
    print(
        f"events/s: all events / time from start; steady/s: after the first "
        f"{WARM_UP_SHARE:.0%} of events; ratio: events/s / baseline {baseline:,.0f};\n"
        "1st batch s: from start until the first batch was done (runtime: includes the "
        "group join)"
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def target_line(what: str, figure: str, ok: bool) -> str:
    """The one printed line of a target: `target <what>: <figure> PASS|MISS`."""
    return f"target {what}: {figure} {verdict(ok)}"


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as null: they are not JSON, and a section that timed
    nothing (no request answered) reports NaN rather than a made-up number."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_results(path: Path, document: dict[str, Any]) -> None:
    """Replace `path` with this run's figures: one file describes one invocation, so its
    ratios and verdicts are never mixed with another run's."""
    text = json.dumps(json_safe(document), indent=2, allow_nan=False, default=_plain) + "\n"
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (through json_safe again); anything else as text."""
    item = getattr(value, "item", None)
    return json_safe(item()) if callable(item) else str(value)
