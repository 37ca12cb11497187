"""Events of returns: points taken back for what came back."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.points.domain.book import Account, StoredOrder
from services.points.ledger.events import points_event, snapshot
from shared.contracts.points import PointsReversed


def points_reversed(
    cause: uuid.UUID,
    account: Account,
    order: StoredOrder,
    return_id: str,
    points: int,
    at: datetime,
    as_of: datetime,
) -> PointsReversed:
    data = snapshot(account, as_of)
    data.update(
        order_id=order.order_id,
        return_id=return_id,
        merchant_id=order.merchant_id,
        points=points,
        order_points_reversed=order.earning.reversed_points,
    )
    return points_event(PointsReversed, "points.reversed", cause, account, at, data)
