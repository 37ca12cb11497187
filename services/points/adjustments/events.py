"""Events of adjustments: an administrator's correction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.points.domain.book import Account
from services.points.ledger.events import points_event, snapshot
from shared.contracts.points import PointsAdjusted


def points_adjusted(account: Account, adjustment: dict[str, Any], at: datetime) -> PointsAdjusted:
    data = {**snapshot(account, at), **adjustment}
    cause = f"adjustment:{adjustment['adjustment_id']}"
    return points_event(PointsAdjusted, "points.adjusted", cause, account, at, data)
