"""The rewards service's own Prometheus gauges (the chassis' are in `shared.telemetry`).

Refreshed by the jobs worker after each pass (`jobs.py`), from the books themselves, so a
scrape of any instance shows the programme's state, not that instance's share of it.
"""

from __future__ import annotations

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.reports.repository import ReportRepository

REVIEWS_WAITING = Gauge(
    "loyalty_rewards_reviews_waiting",
    "Compensations and guarantee claims waiting for a person's decision",
    ["subject"],
)
CLAIMS_IN_FLIGHT = Gauge(
    "loyalty_rewards_catalogue_claims_in_flight",
    "Catalogue claims waiting for the points service's answer",
)


async def refresh(conn: AsyncConnection) -> None:
    """Set every gauge from the books."""
    waiting = await ReportRepository(conn).waiting_counts()
    for subject in ("compensation", "claim"):
        REVIEWS_WAITING.labels(subject=subject).set(waiting.get(subject, 0))
    CLAIMS_IN_FLIGHT.set(waiting.get("catalogue_claim", 0))
