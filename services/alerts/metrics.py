"""The alerts service's own Prometheus metrics.

`loyalty_alerts_open`: open alerts by kind and status, counted on a schedule rather than on
every scrape, so a scrape costs nothing and the database sees one small query per interval.
The count reads only open alerts (the partial indexes on `closed_at IS NULL`), O(open alerts),
never O(customers). Every kind and status is set, zero included, so a status whose last alert
closed drops to 0 instead of keeping its old value. Each instance that runs the workers
reports the same database-wide count: aggregate instances with `max`, not `sum`.

`loyalty_alerts_scan_passes_total`: completed passes of this instance's scanner over
everything due. A test (or an operator) that waits for the scanner to have looked reads it
before and waits for it to grow by two: one whole pass then began after the read.
"""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.alerts.db import ALERT_KINDS, ALERT_STATUSES, alerts

ALERTS_OPEN = Gauge(
    "loyalty_alerts_open",
    "Open alerts by kind and status, as last counted in the alerts database",
    ["kind", "status"],
)
SCAN_PASSES = Counter(
    "loyalty_alerts_scan_passes",
    "Completed passes of the alert scanner over everything due (lapse checks, follow-ups)",
)

OpenCounts = dict[tuple[str, str], int]


async def count_open_alerts(conn: AsyncConnection) -> OpenCounts:
    """Open alerts per (kind, status); combinations with none are 0."""
    query = (
        sa.select(alerts.c.kind, alerts.c.status, sa.func.count())
        .where(alerts.c.closed_at.is_(None))
        .group_by(alerts.c.kind, alerts.c.status)
    )
    counts: OpenCounts = {(k, s): 0 for k in ALERT_KINDS for s in ALERT_STATUSES}
    for kind, status, count in (await conn.execute(query)).all():
        counts[(kind, status)] = count
    return counts


async def refresh_open_alerts_gauge(engine: AsyncEngine) -> OpenCounts:
    """Count open alerts and publish the figures on the gauge; returns what was set."""
    async with engine.connect() as conn:
        counts = await count_open_alerts(conn)
    for (kind, status), count in counts.items():
        ALERTS_OPEN.labels(kind=kind, status=status).set(count)
    return counts
