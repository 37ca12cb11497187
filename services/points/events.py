"""Outgoing events, built from an account right after a change.

Every id is derived from the cause (`derived_event_id`), so re-deriving an event from
the same cause gives the same id and downstream deduplication holds.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from services.points.book import Account, StoredOrder
from services.points.domain.balances import available_and_pending
from services.points.domain.currency import CurrencyRates
from services.points.domain.earning import EarnedPoints
from services.points.domain.lots import Lot
from services.points.domain.tiers import QualifyingActivity, Tier
from shared.contracts.envelope import EventEnvelope, derived_event_id
from shared.contracts.points import (
    PointsAccrued,
    PointsAdjusted,
    PointsCredited,
    PointsExpired,
    PointsRedeemed,
    PointsRedemptionCancelled,
    PointsReversed,
    PointsSettled,
    TierChanged,
    TierChangeReason,
    TierName,
)

SOURCE = "points"
E = TypeVar("E", bound=EventEnvelope)


def snapshot(account: Account, as_of: datetime, first_purchase: bool = False) -> dict[str, Any]:
    """The account fields every points event carries."""
    available, pending = available_and_pending(account.lots, as_of, account.debt)
    return {
        "available": available,
        "pending": pending,
        "debt": account.debt,
        "lifetime_earned": account.lifetime_earned,
        "purchase_count": account.purchase_count,
        "first_purchase": first_purchase,
        "tier": TierName(account.tier.value),
    }


def _event(
    model: type[E],
    event_type: str,
    cause: uuid.UUID | str,
    account: Account,
    at: datetime,
    data: dict[str, Any],
) -> E:
    """The event, validated against its contract in one pass.

    One `model_validate` of the whole document runs entirely in pydantic-core; building
    the data model first and handing the instance to the envelope model cost twice as
    much (the instance is checked again), and it runs once per purchase.
    """
    return model.model_validate(
        {
            "event_id": derived_event_id(cause, event_type),
            "type": event_type,
            "version": 1,
            "occurred_at": at,
            "source": SOURCE,
            "customer_id": account.customer_id,
            "data": data,
        }
    )


def points_accrued(
    cause: uuid.UUID,
    account: Account,
    order: StoredOrder,
    lot: Lot | None,
    earned: EarnedPoints,
    first_purchase: bool,
    as_of: datetime,
) -> PointsAccrued:
    data = snapshot(account, as_of, first_purchase=first_purchase)
    data.update(
        order_id=order.order_id,
        merchant_id=order.merchant_id,
        points=order.earning.points,
        pending_until=lot.pending_until if lot else None,
        expires_at=lot.expires_at if lot else None,
        campaign_ids=list(earned.campaign_ids),
        capped=earned.capped,
    )
    return _event(PointsAccrued, "points.accrued", cause, account, order.occurred_at, data)


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
        amount=_programme_money(order.net_spend_minor(), programme),
        currency=programme.programme_currency,
        fully_returned=fully_returned,
        settled_lifetime_points=account.settled_points,
        settled_purchase_count=account.settled_purchase_count,
        first_settled_purchase=first,
    )
    at = order.settles_at or order.occurred_at
    cause = f"settlement:{order.order_id}"
    return _event(PointsSettled, "points.settled", cause, account, at, data)


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
    return _event(PointsReversed, "points.reversed", cause, account, at, data)


def points_credited(
    cause: uuid.UUID,
    account: Account,
    credit: dict[str, Any],
    at: datetime,
    as_of: datetime,
) -> PointsCredited:
    data = {**snapshot(account, as_of), **credit}
    return _event(PointsCredited, "points.credited", cause, account, at, data)


def points_expired(
    account: Account, lot: Lot, points: int, reference: str, now: datetime
) -> PointsExpired:
    data = snapshot(account, now)
    data.update(
        lot_id=lot.lot_id, points=points, merchant_id=lot.merchant_id, expired_at=lot.expires_at
    )
    cause = f"lot-expiry:{reference}"
    return _event(PointsExpired, "points.expired", cause, account, lot.expires_at, data)


def tier_changed(
    cause: uuid.UUID | str,
    account: Account,
    previous: Tier,
    reason: TierChangeReason,
    activity: QualifyingActivity,
    programme: CurrencyRates,
    at: datetime,
    as_of: datetime,
) -> TierChanged:
    data = snapshot(account, as_of)
    data.update(
        previous_tier=TierName(previous.value),
        reason=reason,
        qualifying_purchases=activity.purchases,
        qualifying_spend=_programme_money(activity.spend_minor, programme),
        currency=programme.programme_currency,
        review_at=at if reason is TierChangeReason.YEARLY_REVIEW else None,
    )
    return _event(TierChanged, "tier.changed", cause, account, at, data)


def points_redeemed(account: Account, redemption: dict[str, Any], at: datetime) -> PointsRedeemed:
    data = {**snapshot(account, at), **redemption}
    cause = f"redemption:{redemption['redemption_id']}"
    return _event(PointsRedeemed, "points.redeemed", cause, account, at, data)


def points_redemption_cancelled(
    account: Account, redemption_id: str, merchant_id: str, points: int, at: datetime
) -> PointsRedemptionCancelled:
    data = snapshot(account, at)
    data.update(redemption_id=redemption_id, merchant_id=merchant_id, points=points)
    cause = f"redemption:{redemption_id}"
    event_type = "points.redemption_cancelled"
    return _event(PointsRedemptionCancelled, event_type, cause, account, at, data)


def points_adjusted(account: Account, adjustment: dict[str, Any], at: datetime) -> PointsAdjusted:
    data = {**snapshot(account, at), **adjustment}
    cause = f"adjustment:{adjustment['adjustment_id']}"
    return _event(PointsAdjusted, "points.adjusted", cause, account, at, data)


def _programme_money(minor: int, programme: CurrencyRates) -> str:
    exponent = programme.exponent(programme.programme_currency)
    return str(Decimal(minor).scaleb(-exponent))
