"""Publish a simulated stream with time acceleration and a live progress line.

Event time runs `speed` times faster than the wall clock: with `speed=525600` a
simulated year passes in a minute. Each event is sent when the wall clock reaches its
place on that accelerated timeline (`speed=0`: as fast as the broker takes them). The
events carry their simulated `occurred_at`, so services on event time (alerts with
ALERTS_CLOCK=event) see the year pass.

The wall clock and the sleep are injected, so pacing is tested without waiting.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TextIO

from shared.contracts.registry import encode_event
from tooling.simulator.stream import SimulatedEvent


class Sender(Protocol):
    async def send(self, topic: str, value: bytes, key: bytes) -> None: ...


@dataclass(frozen=True)
class Pacing:
    """Where an event sits on the wall clock: `started` + (occurred_at - origin) / speed."""

    origin: datetime
    speed: float  # simulated seconds per wall second; 0 = no pacing

    def due_after(self, occurred_at: datetime) -> float:
        """Wall seconds after the start at which the event is due."""
        if self.speed <= 0:
            return 0.0
        return max((occurred_at - self.origin).total_seconds() / self.speed, 0.0)


@dataclass
class Progress:
    """Counts so far, and one line that says where the simulation is."""

    total: int | None = None
    counts: Counter[str] = field(default_factory=Counter)
    simulated_now: datetime | None = None

    def record(self, event: SimulatedEvent) -> None:
        self.counts[event.event.type] += 1
        self.simulated_now = event.occurred_at

    @property
    def sent(self) -> int:
        return sum(self.counts.values())

    def line(self, elapsed: float) -> str:
        day = self.simulated_now.date().isoformat() if self.simulated_now else "-"
        share = f" {100 * self.sent / self.total:5.1f}%" if self.total else ""
        rate = self.sent / elapsed if elapsed > 0 else 0.0
        kinds = " ".join(
            f"{name.split('.')[-1]}={self.counts[name]}" for name in sorted(self.counts)
        )
        return f"[{day}]{share} {self.sent} events ({kinds}) {rate:,.0f}/s"


@dataclass
class ProgressDisplay:
    """Rewrites one terminal line (or prints a line now and then when not a terminal)."""

    stream: TextIO = sys.stderr
    every: float = 0.25
    _last: float = -1e9

    def show(self, text: str, now: float, final: bool = False) -> None:
        interactive = self.stream.isatty()
        every = self.every if interactive else max(self.every, 5.0)
        if not final and now - self._last < every:
            return
        self._last = now
        if interactive:
            self.stream.write("\r" + text.ljust(100) + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


async def run_simulation(
    events: Iterable[SimulatedEvent],
    sender: Sender,
    pacing: Pacing,
    progress: Progress,
    display: ProgressDisplay | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Progress:
    """Send every event at its accelerated time (key = customer id); returns the counts."""
    started = clock()
    for simulated in events:
        wait = started + pacing.due_after(simulated.occurred_at) - clock()
        if wait > 0:
            await sleep(wait)
        event = simulated.event
        await sender.send(simulated.topic, encode_event(event), event.customer_id.encode())
        progress.record(simulated)
        if display is not None:
            display.show(progress.line(clock() - started), clock())
    if display is not None:
        display.show(progress.line(clock() - started), clock(), final=True)
    return progress
