"""The `loyalty_points_outstanding` gauge: live points per merchant, available or pending.

Counted by a periodic job rather than on every scrape, from the same query as
`/v1/admin/liability` (live lots only: remaining > 0 and not yet expired), so a scrape
costs nothing and the figure matches what the liability report says. Every instance that
runs the workers reports the same database-wide figure: aggregate instances with `max`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from services.points.queries import liability_by_merchant
from shared.errors import is_transient

log = logging.getLogger(__name__)
POINTS_OUTSTANDING = Gauge(
    "loyalty_points_outstanding",
    "Live points per merchant and state (available, pending), as last counted",
    ["merchant", "state"],
)
PROGRAMME_WIDE = "-"  # label of credits no merchant is liable for


async def refresh_outstanding_gauge(
    engine: AsyncEngine, now: datetime
) -> dict[tuple[str, str], int]:
    """Publish live points per (merchant, state) on the gauge; returns what was set."""
    async with engine.connect() as conn:
        rows = await liability_by_merchant(conn, now)
    figures: dict[tuple[str, str], int] = {}
    for row in rows:
        merchant = row.merchant_id or PROGRAMME_WIDE
        figures[(merchant, "available")] = row.available
        figures[(merchant, "pending")] = row.pending
    POINTS_OUTSTANDING.clear()  # a merchant whose last points expired drops out
    for (merchant, state), points in figures.items():
        POINTS_OUTSTANDING.labels(merchant=merchant, state=state).set(points)
    return figures


async def keep_outstanding_gauge(
    engine: AsyncEngine,
    clock: Callable[[], datetime],
    stopping: asyncio.Event,
    interval_seconds: float,
) -> None:
    """Refresh the gauge every `interval_seconds` until `stopping` is set."""
    while not stopping.is_set():
        try:
            await refresh_outstanding_gauge(engine, clock())
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("points outstanding gauge not refreshed: %s", exc)
        try:
            await asyncio.wait_for(stopping.wait(), interval_seconds)
        except TimeoutError:
            pass
