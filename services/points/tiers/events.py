"""Events of tiers: a customer moved up at a settlement, or at the yearly review."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.points.domain.book import Account
from services.points.domain.currency import CurrencyRates
from services.points.domain.tiers import QualifyingActivity, Tier
from services.points.ledger.events import points_event, programme_money, snapshot
from shared.contracts.points import TierChanged, TierChangeReason, TierName


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
        qualifying_spend=programme_money(activity.spend_minor, programme),
        currency=programme.programme_currency,
        review_at=at if reason is TierChangeReason.YEARLY_REVIEW else None,
    )
    return points_event(TierChanged, "tier.changed", cause, account, at, data)
