"""Outgoing events, built from an account right after a change.

Every id is derived from the cause (`derived_event_id`), so re-deriving an event from
the same cause gives the same id and downstream deduplication holds.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.points.book import Account, StoredOrder
from services.points.domain.currency import CurrencyRates
from services.points.domain.earning import EarnedPoints
from services.points.domain.lots import Lot
from services.points.domain.tiers import QualifyingActivity, Tier
from shared.contracts.envelope import derived_event_id
from shared.contracts.points import (
    PointsAccrued,
    PointsAccruedData,
    PointsAdjusted,
    PointsAdjustedData,
    PointsCredited,
    PointsCreditedData,
    PointsExpired,
    PointsExpiredData,
    PointsRedeemed,
    PointsRedeemedData,
    PointsRedemptionCancelled,
    PointsRedemptionCancelledData,
    PointsReversed,
    PointsReversedData,
    TierChanged,
    TierChangedData,
    TierChangeReason,
    TierName,
)

SOURCE = "points"


def snapshot(account: Account, as_of: datetime, first_purchase: bool = False) -> dict[str, Any]:
    """The account fields every points event carries."""
    balance = account.balance(as_of)
    return {
        "available": balance.available,
        "pending": balance.pending,
        "debt": account.debt,
        "lifetime_earned": account.lifetime_earned,
        "purchase_count": account.purchase_count,
        "first_purchase": first_purchase,
        "tier": TierName(account.tier.value),
    }


def _envelope(
    cause: uuid.UUID | str, purpose: str, account: Account, at: datetime
) -> dict[str, Any]:
    return {
        "event_id": derived_event_id(cause, purpose),
        "version": 1,
        "occurred_at": at,
        "source": SOURCE,
        "customer_id": account.customer_id,
    }


def points_accrued(
    cause: uuid.UUID,
    account: Account,
    order: StoredOrder,
    lot: Lot | None,
    earned: EarnedPoints,
    first_purchase: bool,
    as_of: datetime,
) -> PointsAccrued:
    data = PointsAccruedData(
        **snapshot(account, as_of, first_purchase=first_purchase),
        order_id=order.order_id,
        merchant_id=order.merchant_id,
        points=order.earning.points,
        pending_until=lot.pending_until if lot else None,
        expires_at=lot.expires_at if lot else None,
        campaign_ids=list(earned.campaign_ids),
        capped=earned.capped,
    )
    envelope = _envelope(cause, "points.accrued", account, order.occurred_at)
    return PointsAccrued(type="points.accrued", data=data, **envelope)


def points_reversed(
    cause: uuid.UUID,
    account: Account,
    order: StoredOrder,
    return_id: str,
    points: int,
    at: datetime,
    as_of: datetime,
) -> PointsReversed:
    data = PointsReversedData(
        **snapshot(account, as_of),
        order_id=order.order_id,
        return_id=return_id,
        merchant_id=order.merchant_id,
        points=points,
        order_points_reversed=order.earning.reversed_points,
    )
    envelope = _envelope(cause, "points.reversed", account, at)
    return PointsReversed(type="points.reversed", data=data, **envelope)


def points_credited(
    cause: uuid.UUID,
    account: Account,
    credit: dict[str, Any],
    at: datetime,
    as_of: datetime,
) -> PointsCredited:
    data = PointsCreditedData(**snapshot(account, as_of), **credit)
    envelope = _envelope(cause, "points.credited", account, at)
    return PointsCredited(type="points.credited", data=data, **envelope)


def points_expired(
    account: Account, lot: Lot, points: int, reference: str, now: datetime
) -> PointsExpired:
    data = PointsExpiredData(
        **snapshot(account, now),
        lot_id=lot.lot_id,
        points=points,
        merchant_id=lot.merchant_id,
        expired_at=lot.expires_at,
    )
    envelope = _envelope(f"lot-expiry:{reference}", "points.expired", account, lot.expires_at)
    return PointsExpired(type="points.expired", data=data, **envelope)


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
    data = TierChangedData(
        **snapshot(account, as_of),
        previous_tier=TierName(previous.value),
        reason=reason,
        qualifying_purchases=activity.purchases,
        qualifying_spend=_programme_money(activity.spend_minor, programme),
        currency=programme.programme_currency,
        review_at=at if reason is TierChangeReason.YEARLY_REVIEW else None,
    )
    envelope = _envelope(cause, "tier.changed", account, at)
    return TierChanged(type="tier.changed", data=data, **envelope)


def points_redeemed(account: Account, redemption: dict[str, Any], at: datetime) -> PointsRedeemed:
    data = PointsRedeemedData(**snapshot(account, at), **redemption)
    cause = f"redemption:{redemption['redemption_id']}"
    envelope = _envelope(cause, "points.redeemed", account, at)
    return PointsRedeemed(type="points.redeemed", data=data, **envelope)


def points_redemption_cancelled(
    account: Account, redemption_id: str, merchant_id: str, points: int, at: datetime
) -> PointsRedemptionCancelled:
    data = PointsRedemptionCancelledData(
        **snapshot(account, at), redemption_id=redemption_id, merchant_id=merchant_id, points=points
    )
    envelope = _envelope(f"redemption:{redemption_id}", "points.redemption_cancelled", account, at)
    return PointsRedemptionCancelled(type="points.redemption_cancelled", data=data, **envelope)


def points_adjusted(account: Account, adjustment: dict[str, Any], at: datetime) -> PointsAdjusted:
    data = PointsAdjustedData(**snapshot(account, at), **adjustment)
    cause = f"adjustment:{adjustment['adjustment_id']}"
    envelope = _envelope(cause, "points.adjusted", account, at)
    return PointsAdjusted(type="points.adjusted", data=data, **envelope)


def _programme_money(minor: int, programme: CurrencyRates) -> str:
    exponent = programme.exponent(programme.programme_currency)
    return str(Decimal(minor).scaleb(-exponent))
