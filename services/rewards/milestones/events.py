"""The points a milestone or a referral grants, credited by the points service once."""

from __future__ import annotations

from datetime import datetime

from shared.contracts.rewards import (
    PointsCreditRequested,
    PointsCreditRequestedData,
    rewards_envelope,
)


def points_granted(
    customer_id: str, points: int, origin: str, key: str, at: datetime
) -> PointsCreditRequested:
    """Credit `points` for the milestone or referral `key` (the credit id: applied once)."""
    data = PointsCreditRequestedData(credit_id=key, points=points, reason=f"{origin}: {key}")
    return rewards_envelope(PointsCreditRequested, customer_id, key, at, data)
