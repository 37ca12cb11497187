"""Tiers: purchases AND spend over a rolling 12 months; up at once, down only at review."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.points.domain.errors import InvalidRuleError
from services.points.domain.moments import add_months
from services.points.domain.tiers import (
    QualifyingActivity,
    QualifyingPurchase,
    Tier,
    TierPolicy,
    TierProgress,
    TierThreshold,
    progress_to_next_tier,
    qualified_tier,
    qualifying_activity,
    tier_after_settlement,
    tier_at_yearly_review,
)
from tests.unit.points.builders import at

NOW = at(2025, 6, 30)


def purchases(count: int, each_minor: int, last: datetime = NOW) -> list[QualifyingPurchase]:
    """``count`` purchases one week apart, the last one at ``last``."""
    return [
        QualifyingPurchase(f"order-{i}", last - timedelta(weeks=i), each_minor)
        for i in range(count)
    ]


class TestQualification:
    @pytest.mark.parametrize(
        ("count", "each_minor", "expected"),
        [
            (6, 83_34, Tier.SILVER),  # 6 purchases, 500.04
            (6, 83_33, Tier.MEMBER),  # 499.98: spend short
            (5, 200_00, Tier.MEMBER),  # 1,000.00 but only 5 purchases
            (12, 166_67, Tier.GOLD),
            (24, 208_34, Tier.PLATINUM),
            (30, 100_00, Tier.GOLD),  # frequent, but 3,000.00 is short of Platinum's spend
        ],
    )
    def test_default_thresholds_need_purchases_and_spend(
        self, count: int, each_minor: int, expected: Tier
    ) -> None:
        activity = qualifying_activity(purchases(count, each_minor), NOW)
        got = qualified_tier(activity)
        assert got == expected, f"{count} purchases of {each_minor / 100:.2f} should be {expected}"

    def test_window_is_the_last_twelve_months(self) -> None:
        window_start = add_months(NOW, -12)
        edge = [
            QualifyingPurchase("too-old", window_start, 100_00),
            QualifyingPurchase("just-in", window_start + timedelta(seconds=1), 100_00),
            QualifyingPurchase("future", NOW + timedelta(seconds=1), 100_00),
        ]
        activity = qualifying_activity(edge, NOW)
        assert activity == QualifyingActivity(purchases=1, spend_minor=100_00), (
            "only the purchase inside (now - 12 months, now] counts"
        )

    def test_returned_purchase_stops_counting(self) -> None:
        history = [
            QualifyingPurchase("kept", NOW, 100_00),
            QualifyingPurchase("returned", NOW, 100_00, refunded_minor=100_00),
            QualifyingPurchase("half-returned", NOW, 100_00, refunded_minor=40_00),
        ]
        activity = qualifying_activity(history, NOW)
        assert activity == QualifyingActivity(purchases=2, spend_minor=160_00), (
            "a fully returned purchase drops out; a partial return reduces the spend"
        )


class TestMovingUpAndDown:
    def test_moves_up_as_soon_as_a_purchase_qualifies(self) -> None:
        five = purchases(5, 100_00, last=NOW - timedelta(weeks=1))
        assert tier_after_settlement(Tier.MEMBER, five, NOW) == Tier.MEMBER
        sixth = [*five, QualifyingPurchase("sixth", NOW, 100_00)]
        assert tier_after_settlement(Tier.MEMBER, sixth, NOW) == Tier.SILVER, (
            "the sixth purchase reaching 500.00 must lift the customer to Silver at once"
        )

    def test_can_jump_several_levels_up(self) -> None:
        assert tier_after_settlement(Tier.MEMBER, purchases(24, 300_00), NOW) == Tier.PLATINUM

    def test_never_moves_down_between_reviews(self) -> None:
        assert tier_after_settlement(Tier.GOLD, purchases(1, 10_00), NOW) == Tier.GOLD, (
            "a Gold customer with little recent activity keeps Gold until the review"
        )

    def test_review_moves_down_one_level_at_most(self) -> None:
        assert tier_at_yearly_review(Tier.PLATINUM, [], NOW) == Tier.GOLD, (
            "a Platinum customer with no purchases falls only to Gold at the review"
        )
        assert tier_at_yearly_review(Tier.MEMBER, [], NOW) == Tier.MEMBER

    def test_review_keeps_a_tier_still_earned(self) -> None:
        assert tier_at_yearly_review(Tier.GOLD, purchases(12, 200_00), NOW) == Tier.GOLD

    def test_review_lands_on_qualified_tier_when_one_level_down(self) -> None:
        assert tier_at_yearly_review(Tier.GOLD, purchases(6, 100_00), NOW) == Tier.SILVER

    def test_review_can_also_move_up(self) -> None:
        assert tier_at_yearly_review(Tier.SILVER, purchases(12, 200_00), NOW) == Tier.GOLD


class TestProgress:
    def test_purchases_and_spend_still_needed(self) -> None:
        progress = progress_to_next_tier(Tier.MEMBER, QualifyingActivity(4, 300_00))
        assert progress == TierProgress(Tier.SILVER, purchases_needed=2, spend_needed_minor=200_00)

    def test_progress_counts_from_the_tier_held(self) -> None:
        progress = progress_to_next_tier(Tier.GOLD, QualifyingActivity(30, 1_000_00))
        assert progress == TierProgress(Tier.PLATINUM, 0, 4_000_00), (
            "a Gold customer needs Platinum's spend even if purchases are enough"
        )

    def test_no_next_tier_at_the_top(self) -> None:
        assert progress_to_next_tier(Tier.PLATINUM, QualifyingActivity(0, 0)).next_tier is None


class TestConfiguration:
    def test_thresholds_are_configurable(self) -> None:
        policy = TierPolicy(
            thresholds=(
                TierThreshold(Tier.SILVER, 2, 100_00),
                TierThreshold(Tier.GOLD, 4, 200_00),
                TierThreshold(Tier.PLATINUM, 8, 400_00),
            ),
            window_months=6,
        )
        history = purchases(4, 50_00)
        assert qualified_tier(qualifying_activity(history, NOW, policy), policy) == Tier.GOLD

    def test_higher_tier_cannot_be_easier(self) -> None:
        with pytest.raises(InvalidRuleError):
            TierPolicy(
                thresholds=(
                    TierThreshold(Tier.SILVER, 6, 500_00),
                    TierThreshold(Tier.GOLD, 5, 2_000_00),
                    TierThreshold(Tier.PLATINUM, 24, 5_000_00),
                )
            )

    def test_every_tier_needs_a_threshold(self) -> None:
        with pytest.raises(InvalidRuleError):
            TierPolicy(thresholds=(TierThreshold(Tier.SILVER, 6, 500_00),))
