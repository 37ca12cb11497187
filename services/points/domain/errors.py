"""Errors the points rules raise.

Each error carries a stable machine-readable ``code`` so the API layer can map it to an HTTP
status and a problem+json body, and the consumer can name the reason in dead-letter headers.
None of them is transient: retrying the same input gives the same error, so a consumer that
meets one should dead-letter the event rather than retry it.
"""

from __future__ import annotations

from typing import ClassVar


class PointsRuleError(Exception):
    """Base of every business-rule failure in the points domain."""

    code: ClassVar[str] = "points_rule_broken"


class NaiveDatetimeError(PointsRuleError, ValueError):
    """A moment without a timezone: refused, because its meaning depends on the server."""

    code = "naive_datetime"


class InvalidRuleError(PointsRuleError, ValueError):
    """An earning rule, tier policy or lot that cannot be applied as configured."""

    code = "invalid_rule"


class InvalidPurchaseError(PointsRuleError, ValueError):
    """A purchase whose amounts cannot earn points (negative price, zero quantity...)."""

    code = "invalid_purchase"


class UnknownCurrencyError(PointsRuleError):
    """The programme has no rate for this currency; the event goes to the dead-letter topic."""

    code = "unknown_currency"

    def __init__(self, currency: str) -> None:
        super().__init__(f"the programme has no exchange rate for currency {currency!r}")
        self.currency = currency


class InsufficientPointsError(PointsRuleError):
    """A redemption asks for more points than the customer has available now."""

    code = "insufficient_points"

    def __init__(self, requested: int, available: int) -> None:
        super().__init__(f"{requested} points requested but only {available} are available")
        self.requested = requested
        self.available = available
