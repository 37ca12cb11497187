"""What "now" means to the alerts scanners: the wall clock, or event time.

Event time is the latest `occurred_at` the consumer has seen (the `event_clock` row it advances
in the same transaction as each batch). With it a simulated year of purchases replays in
seconds and the alerts come out as if the year had passed; tests and the demo use it. The
clock is chosen in configuration (`ALERTS_CLOCK=wall|event`) and injected, so tests can also
pin a moment with `FixedClock`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.clock.repository import POS_CLOCK, EventClockRepository
from services.alerts.domain.activity import require_aware


class ClockMode(StrEnum):
    WALL = "wall"
    EVENT = "event"


class AlertsClock(Protocol):
    async def now(self, conn: AsyncConnection) -> datetime | None:
        """The current moment, or None when there is none yet (no event seen)."""
        ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WallClock:
    source: Callable[[], datetime] = field(default=_utc_now)

    async def now(self, conn: AsyncConnection) -> datetime | None:
        return require_aware(self.source(), "wall clock time")


@dataclass(frozen=True)
class EventTimeClock:
    clock: str = POS_CLOCK

    async def now(self, conn: AsyncConnection) -> datetime | None:
        return await EventClockRepository(conn).read(self.clock)


@dataclass(frozen=True)
class FixedClock:
    """A pinned moment: tests, and operators replaying a past day by hand."""

    moment: datetime

    def __post_init__(self) -> None:
        require_aware(self.moment, "fixed clock time")

    async def now(self, conn: AsyncConnection) -> datetime | None:
        return self.moment


def clock_for(mode: ClockMode) -> AlertsClock:
    return EventTimeClock() if mode is ClockMode.EVENT else WallClock()


async def service_now(conn: AsyncConnection, clock: AlertsClock) -> datetime:
    """The clock's now; wall time while event time has not started (no event seen yet)."""
    return await clock.now(conn) or datetime.now(UTC)
