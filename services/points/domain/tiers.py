"""Tiers for frequent and steady buyers.

A customer qualifies for a tier by meeting BOTH a purchase count and a spend threshold over a
rolling 12-month window: buying often and in steady amounts, not one big basket. A purchase
counts only once it is SETTLED (its return window ended, ``settles_at``), net of its returns,
so buying and returning inside the window never counts. Customers move up when a settlement
qualifies them; they move down only at the yearly review, and then by at most one level, so
one quiet month never costs a Platinum customer everything.

Spend is in programme-currency minor units (convert with ``CurrencyRates.to_programme_minor``
first). A partially refunded purchase counts with its spend net of the refund; a fully returned
purchase no longer counts at all, neither as a purchase nor as spend.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.points.domain.errors import InvalidRuleError
from services.points.domain.moments import add_months, require_aware


class Tier(StrEnum):
    """Programme levels, lowest first."""

    MEMBER = "member"
    SILVER = "silver"
    GOLD = "gold"
    PLATINUM = "platinum"

    @property
    def rank(self) -> int:
        """0 for Member up to 3 for Platinum."""
        return _TIER_ORDER.index(self)

    def one_level_down(self) -> Tier:
        """The tier just below (Member stays Member)."""
        return _TIER_ORDER[max(self.rank - 1, 0)]


_TIER_ORDER: tuple[Tier, ...] = (Tier.MEMBER, Tier.SILVER, Tier.GOLD, Tier.PLATINUM)


@dataclass(frozen=True)
class TierThreshold:
    """What a customer needs within the window to hold ``tier``."""

    tier: Tier
    min_purchases: int
    min_spend_minor: int


DEFAULT_THRESHOLDS: tuple[TierThreshold, ...] = (
    TierThreshold(Tier.SILVER, min_purchases=6, min_spend_minor=500_00),
    TierThreshold(Tier.GOLD, min_purchases=12, min_spend_minor=2_000_00),
    TierThreshold(Tier.PLATINUM, min_purchases=24, min_spend_minor=5_000_00),
)


@dataclass(frozen=True)
class TierPolicy:
    """Configurable thresholds (one per tier above Member) and the window length."""

    thresholds: tuple[TierThreshold, ...] = DEFAULT_THRESHOLDS
    window_months: int = 12

    def __post_init__(self) -> None:
        tiers = tuple(threshold.tier for threshold in self.thresholds)
        if tiers != _TIER_ORDER[1:]:
            raise InvalidRuleError("thresholds must list Silver, Gold and Platinum, in order")
        if self.window_months < 1:
            raise InvalidRuleError("the qualification window must be at least one month")
        for lower, higher in zip(self.thresholds, self.thresholds[1:], strict=False):
            if (
                higher.min_purchases < lower.min_purchases
                or higher.min_spend_minor < lower.min_spend_minor
            ):
                raise InvalidRuleError(
                    f"{higher.tier} must not be easier to reach than {lower.tier}"
                )

    def threshold_for(self, tier: Tier) -> TierThreshold:
        """Threshold of a tier above Member."""
        return next(threshold for threshold in self.thresholds if threshold.tier == tier)


@dataclass(frozen=True)
class QualifyingPurchase:
    """One purchase as tier qualification sees it: when, how much, and how much came back."""

    order_id: str
    occurred_at: datetime
    amount_minor: int
    refunded_minor: int = 0
    settles_at: datetime | None = None  # None: settled at once (when it occurred)
    fully_returned: bool | None = None  # None: judged by money (refund >= amount)

    def __post_init__(self) -> None:
        require_aware(self.occurred_at, "purchase time")

    @property
    def counts(self) -> bool:
        """A purchase fully returned no longer counts toward qualification."""
        if self.fully_returned is not None:
            return not self.fully_returned
        return self.refunded_minor < self.amount_minor

    def settled_by(self, moment: datetime) -> bool:
        """True once the purchase's return window has ended at ``moment``."""
        return (self.settles_at or self.occurred_at) <= moment

    @property
    def net_spend_minor(self) -> int:
        """Spend left after refunds (never negative)."""
        return max(self.amount_minor - self.refunded_minor, 0)


def net_spend_minor(
    spend_minor: int, amount_minor: int, refunded_minor: int, fully_returned: bool
) -> int:
    """An order's spend (programme currency) net of refunds; 0 once every unit came back.

    Refunds are in the order's own currency: they take the same proportion of the spend.
    """
    if fully_returned or refunded_minor >= amount_minor:
        return 0
    return spend_minor - spend_minor * refunded_minor // amount_minor


def qualifying_purchase(
    order_id: str,
    occurred_at: datetime,
    spend_minor: int,
    amount_minor: int,
    refunded_minor: int,
    *,
    settles_at: datetime | None,
    fully_returned: bool,
) -> QualifyingPurchase:
    """A recorded order as tier qualification sees it: spend net of refunds, in programme money."""
    net = net_spend_minor(spend_minor, amount_minor, refunded_minor, fully_returned)
    return QualifyingPurchase(
        order_id,
        occurred_at,
        spend_minor,
        spend_minor - net,
        settles_at=settles_at,
        fully_returned=fully_returned,
    )


@dataclass(frozen=True)
class QualifyingActivity:
    """Purchases and spend that count in the window ending at some moment."""

    purchases: int
    spend_minor: int


@dataclass(frozen=True)
class TierProgress:
    """What is still needed for the next tier; ``next_tier`` is None at the top."""

    next_tier: Tier | None
    purchases_needed: int
    spend_needed_minor: int


def qualifying_activity(
    purchases: Iterable[QualifyingPurchase], now: datetime, policy: TierPolicy = TierPolicy()
) -> QualifyingActivity:
    """Count settled purchases and their net spend in the rolling window ``(now - window, now]``.

    A purchase counts when it occurred in the window, had settled by ``now`` and was not
    fully returned.
    """
    window_start = add_months(require_aware(now, "now"), -policy.window_months)
    counted = [
        purchase
        for purchase in purchases
        if window_start < purchase.occurred_at <= now
        and purchase.settled_by(now)
        and purchase.counts
    ]
    return QualifyingActivity(
        purchases=len(counted), spend_minor=sum(p.net_spend_minor for p in counted)
    )


def qualified_tier(activity: QualifyingActivity, policy: TierPolicy = TierPolicy()) -> Tier:
    """Highest tier whose purchase AND spend thresholds the activity meets."""
    reached = Tier.MEMBER
    for threshold in policy.thresholds:
        if (
            activity.purchases >= threshold.min_purchases
            and activity.spend_minor >= threshold.min_spend_minor
        ):
            reached = threshold.tier
    return reached


def tier_after_settlement(
    current: Tier,
    purchases: Iterable[QualifyingPurchase],
    now: datetime,
    policy: TierPolicy = TierPolicy(),
) -> Tier:
    """Tier right after a purchase settled: up if the window now qualifies higher, never down."""
    reached = qualified_tier(qualifying_activity(purchases, now, policy), policy)
    return reached if reached.rank > current.rank else current


def tier_at_yearly_review(
    current: Tier,
    purchases: Iterable[QualifyingPurchase],
    review_at: datetime,
    policy: TierPolicy = TierPolicy(),
) -> Tier:
    """Tier after the yearly review: the qualified tier, but at most one level below today's."""
    reached = qualified_tier(qualifying_activity(purchases, review_at, policy), policy)
    floor = current.one_level_down()
    return reached if reached.rank > floor.rank else floor


def progress_to_next_tier(
    current: Tier, activity: QualifyingActivity, policy: TierPolicy = TierPolicy()
) -> TierProgress:
    """Purchases and spend still needed to reach the tier above ``current``."""
    if current is Tier.PLATINUM:
        return TierProgress(next_tier=None, purchases_needed=0, spend_needed_minor=0)
    next_tier = _TIER_ORDER[current.rank + 1]
    threshold = policy.threshold_for(next_tier)
    return TierProgress(
        next_tier=next_tier,
        purchases_needed=max(threshold.min_purchases - activity.purchases, 0),
        spend_needed_minor=max(threshold.min_spend_minor - activity.spend_minor, 0),
    )
