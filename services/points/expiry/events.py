"""Events of expiry: what was left of a lot when its validity ended."""

from __future__ import annotations

from datetime import datetime

from services.points.domain.book import Account
from services.points.domain.lots import Lot
from services.points.ledger.events import points_event, snapshot
from shared.contracts.points import PointsExpired


def points_expired(
    account: Account, lot: Lot, points: int, reference: str, now: datetime
) -> PointsExpired:
    data = snapshot(account, now)
    data.update(
        lot_id=lot.lot_id, points=points, merchant_id=lot.merchant_id, expired_at=lot.expires_at
    )
    cause = f"lot-expiry:{reference}"
    return points_event(PointsExpired, "points.expired", cause, account, lot.expires_at, data)
