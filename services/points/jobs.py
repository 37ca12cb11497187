"""Every periodic job of the points service, each a `shared.jobs.PeriodicJob`:

- `jobs` (every `jobs_interval_seconds`): the due-time work. Settlement runs first (a
  return window ends before the points it freed can expire), then expiry, then the yearly
  tier review, so a review counts every order settled by then. Each is safe with several
  instances and costs O(work due) (see `settlement`, `expiry`, `tiers`).
- `outstanding-gauge` (every `outstanding_gauge_interval_seconds`): recounts
  `loyalty_points_outstanding` (see `metrics`).
A transient fault (database away) is logged and retried at the next tick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.points.expiry.service import expire_due_points
from services.points.metrics import refresh_outstanding_gauge
from services.points.settings import PointsSettings
from services.points.settlement.service import settle_due_orders
from services.points.tiers.service import review_due_tiers
from shared.contracts.topics import Topics
from shared.jobs import PeriodicJob


@dataclass(frozen=True)
class JobBatches:
    """Rows each due-time job claims per transaction (`POINTS_*_BATCH`)."""

    settlement: int = 500
    expiry: int = 500
    review: int = 200


async def run_due_work(
    engine: AsyncEngine,
    now: datetime,
    *,
    points_topic: str = Topics.POINTS,
    batches: JobBatches = JobBatches(),
) -> None:
    """One pass of the due-time work at `now`: settlement, then expiry, then reviews."""
    topic = points_topic
    await settle_due_orders(engine, now, points_topic=topic, batch_size=batches.settlement)
    await expire_due_points(engine, now, points_topic=topic, batch_size=batches.expiry)
    await review_due_tiers(engine, now, points_topic=topic, batch_size=batches.review)


def due_work_job(
    engine: AsyncEngine, clock: Callable[[], datetime], settings: PointsSettings
) -> PeriodicJob:
    batches = JobBatches(settings.settlement_batch, settings.expiry_batch, settings.review_batch)

    async def tick() -> None:
        await run_due_work(engine, clock(), points_topic=settings.points_topic, batches=batches)

    return PeriodicJob("jobs", tick, settings.jobs_interval_seconds)


def outstanding_gauge_job(
    engine: AsyncEngine, clock: Callable[[], datetime], settings: PointsSettings
) -> PeriodicJob:
    async def tick() -> None:
        await refresh_outstanding_gauge(engine, clock())

    return PeriodicJob("outstanding-gauge", tick, settings.outstanding_gauge_interval_seconds)


def points_jobs(
    engine: AsyncEngine, clock: Callable[[], datetime], settings: PointsSettings
) -> list[PeriodicJob]:
    """The service's periodic jobs, for the app's workers."""
    return [
        due_work_job(engine, clock, settings),
        outstanding_gauge_job(engine, clock, settings),
    ]
