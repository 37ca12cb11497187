"""Events of accrual: points earned by a purchase, or credited on request."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from services.points.domain.book import Account, StoredOrder
from services.points.domain.earning import EarnedPoints
from services.points.domain.lots import Lot
from services.points.ledger.events import encoded_points_event, snapshot
from shared.contracts.points import PointsAccrued, PointsCredited
from shared.outbox import EncodedEvent


def points_accrued(
    cause: uuid.UUID | str,
    account: Account,
    order: StoredOrder,
    lot: Lot | None,
    earned: EarnedPoints,
    first_purchase: bool,
    as_of: datetime,
) -> EncodedEvent:
    data = snapshot(account, as_of, first_purchase=first_purchase)
    data["order_id"] = order.order_id  # item by item: `update(**fields)` builds a dict more
    data["merchant_id"] = order.merchant_id
    data["points"] = order.earning.points
    data["pending_until"] = lot.pending_until if lot else None
    data["expires_at"] = lot.expires_at if lot else None
    data["campaign_ids"] = list(earned.campaign_ids)
    data["capped"] = earned.capped
    return encoded_points_event(
        PointsAccrued, "points.accrued", cause, account, order.occurred_at, data
    )


def points_credited(
    cause: uuid.UUID,
    account: Account,
    credit: dict[str, Any],
    at: datetime,
    as_of: datetime,
) -> EncodedEvent:
    data = {**snapshot(account, as_of), **credit}
    return encoded_points_event(PointsCredited, "points.credited", cause, account, at, data)
