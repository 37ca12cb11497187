"""Errors raised by the rewards rules.

Each error carries a stable machine-readable `code` so that the API layer can
render it as `application/problem+json` without parsing messages, and a
message written in business words for the person reading the response.
"""

from __future__ import annotations

from typing import ClassVar


class RewardsRuleError(ValueError):
    """Base of every rewards rule violation; `code` is stable across releases."""

    code: ClassVar[str] = "rewards_rule_violated"


class NaiveDatetimeError(RewardsRuleError):
    """A time without a timezone: we cannot tell when it happened, so we refuse it."""

    code: ClassVar[str] = "naive_datetime"


class BlankIdentifierError(RewardsRuleError):
    """An empty customer, order or merchant id: it would merge unrelated records."""

    code: ClassVar[str] = "blank_identifier"


class InvalidRuleError(RewardsRuleError):
    """A policy, rule or catalogue item that is not self-consistent."""

    code: ClassVar[str] = "invalid_rule"


class MeasurementMismatchError(RewardsRuleError):
    """A measurement in a unit the policy cannot compare (minutes versus a yes/no breach)."""

    code: ClassVar[str] = "measurement_unit_mismatch"


class IllegalClaimTransitionError(RewardsRuleError):
    """A catalogue claim asked to move to a state its saga does not allow."""

    code: ClassVar[str] = "illegal_claim_transition"


class InvalidCodeError(RewardsRuleError):
    """A voucher or referral code that is malformed or fails its check character."""

    code: ClassVar[str] = "invalid_code"


class VoucherNotRedeemableError(RewardsRuleError):
    """A voucher that cannot be redeemed here and now; `reason` says why."""

    code: ClassVar[str] = "voucher_not_redeemable"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
