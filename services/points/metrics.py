"""The points service's own gauge: `loyalty_points_outstanding`, live points per merchant,
available or pending.

Counted by a periodic job (`jobs`) rather than on every scrape, from the same query as
`/v1/admin/liability` (live lots only: remaining > 0 and not yet expired), so a scrape
costs nothing and the figure matches what the liability report says. Every instance that
runs the workers reports the same database-wide figure: aggregate instances with `max`.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from services.points.liability.repository import LiabilityRepository

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
        rows = await LiabilityRepository(conn).by_merchant(now)
    figures: dict[tuple[str, str], int] = {}
    for row in rows:
        merchant = row.merchant_id or PROGRAMME_WIDE
        figures[(merchant, "available")] = row.available
        figures[(merchant, "pending")] = row.pending
    POINTS_OUTSTANDING.clear()  # a merchant whose last points expired drops out
    for (merchant, state), points in figures.items():
        POINTS_OUTSTANDING.labels(merchant=merchant, state=state).set(points)
    return figures
