"""Events of settlement: an order's return window ended."""

from __future__ import annotations

from datetime import datetime

from services.points.domain.book import Account, StoredOrder
from services.points.domain.currency import CurrencyRates
from services.points.ledger.events import points_event, programme_money, snapshot
from shared.contracts.points import PointsSettled


def points_settled(
    account: Account,
    order: StoredOrder,
    kept_points: int,
    fully_returned: bool,
    first: bool,
    programme: CurrencyRates,
    as_of: datetime,
) -> PointsSettled:
    """An order's return window ended; what stayed of it, and the customer's settled totals."""
    data = snapshot(account, as_of)
    data.update(
        order_id=order.order_id,
        merchant_id=order.merchant_id,
        points=kept_points,
        amount=programme_money(order.net_spend_minor(), programme),
        currency=programme.programme_currency,
        fully_returned=fully_returned,
        settled_lifetime_points=account.settled_points,
        settled_purchase_count=account.settled_purchase_count,
        first_settled_purchase=first,
    )
    at = order.settles_at or order.occurred_at
    cause = f"settlement:{order.order_id}"
    return points_event(PointsSettled, "points.settled", cause, account, at, data)
