"""What a milestone or a referral hands out: a voucher for a reward, or points.

Kept apart from the guarantee compensation lines because those also carry
money refunds, which milestones and referrals never pay.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.rewards.domain.errors import InvalidRuleError


@dataclass(frozen=True)
class VoucherGrant:
    """Issue a voucher for `reward_code` (e.g. "free-night")."""

    reward_code: str

    def __post_init__(self) -> None:
        if not self.reward_code.strip():
            raise InvalidRuleError("a voucher grant needs a reward code")


@dataclass(frozen=True)
class PointsGrant:
    """Credit `points` through the points service (sent as an event)."""

    points: int

    def __post_init__(self) -> None:
        if self.points <= 0:
            raise InvalidRuleError(
                f"a points grant must credit at least 1 point, got {self.points}"
            )


Grant = VoucherGrant | PointsGrant
