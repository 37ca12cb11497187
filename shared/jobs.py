"""`PeriodicJob`: one loop for every service's periodic work.

A job calls its `tick()` every `interval_seconds` until stopped. A transient fault (the
database or broker briefly away, `shared.errors.is_transient`) is logged and the next tick
tries again; any other error ends the job, so the worker board reports it as crashed
instead of the fault repeating silently. `wake()` runs the next tick at once (used when
new work is known to be waiting).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from shared.errors import is_transient

log = logging.getLogger(__name__)


class PeriodicJob:
    """Runs `tick` now and then every `interval_seconds` until `stop()`."""

    def __init__(
        self,
        name: str,
        tick: Callable[[], Awaitable[object]],
        interval_seconds: float,
        *,
        before_first_tick: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError(f"{name}: interval_seconds must be positive, not {interval_seconds}")
        self.name = name
        self.tick = tick
        self.interval_seconds = interval_seconds
        self._before_first_tick = before_first_tick
        self._stopping = asyncio.Event()
        self._nudged = asyncio.Event()
        self.ticks = 0  # completed ticks: lets a test prove the job ran before asserting on it

    def stop(self) -> None:
        self._stopping.set()
        self._nudged.set()

    def wake(self) -> None:
        self._nudged.set()

    async def run(self) -> None:
        if self._before_first_tick is not None:
            await self._before_first_tick()
        while not self._stopping.is_set():
            try:
                await self.tick()
                self.ticks += 1
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("%s: transient fault, the next tick retries: %s", self.name, exc)
            if self._stopping.is_set():
                return
            try:
                await asyncio.wait_for(self._nudged.wait(), timeout=self.interval_seconds)
            except TimeoutError:
                pass
            self._nudged.clear()
