"""Guarantee claims filed by partner apps: abuse screening and the green channel.

A customer complains in an app; the claim goes through the same policy
evaluation as a breach detected by an operations system, but first it is
screened: a claim for someone else's order, or one filed after the claim window,
is rejected with a reason the customer can read. An order this service has not
heard of yet goes to manual review rather than being refused: the purchase
event may simply not have arrived, and refusing an honest claim is exactly the
failure the source documents warn about.

Green channel (DOMAIN.md section 2): every complaint reaches a manager within
12 hours and gets an answer within 24. A claim still undecided 12 hours after
filing is due for escalation; one undecided after 24 hours is overdue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.rewards.domain.guarantee import GuaranteePolicy, PromiseKind
from services.rewards.domain.timestamps import require_aware

ESCALATE_AFTER = timedelta(hours=12)
DECIDE_WITHIN = timedelta(hours=24)


@dataclass(frozen=True)
class KnownOrder:
    """What this service recorded of an order from `pos.purchases` (returns reduce it)."""

    order_id: str
    customer_id: str
    merchant_id: str
    ordered_at: datetime
    amount_minor: int = 0
    currency: str = ""
    returned_minor: int = 0

    def __post_init__(self) -> None:
        require_aware(self.ordered_at, "the order time")

    @property
    def net_amount_minor(self) -> int:
        """What the customer still paid for after returns: what compensation is based on."""
        return max(0, self.amount_minor - self.returned_minor)

    @property
    def returned_in_full(self) -> bool:
        """Every cent paid was refunded: nothing is left to compensate, whoever reports."""
        return self.amount_minor > 0 and self.net_amount_minor == 0


@dataclass(frozen=True)
class GuaranteeClaim:
    """A customer's complaint that a merchant missed a promise on an order."""

    claim_id: str
    customer_id: str
    merchant_id: str
    order_id: str
    promise: PromiseKind
    filed_at: datetime

    def __post_init__(self) -> None:
        require_aware(self.filed_at, "the claim filing time")


class ScreeningOutcome(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    MANUAL_REVIEW = "manual_review"


class ClaimReason(StrEnum):
    """Stable codes for why a claim was not accepted as filed."""

    NO_SUCH_PROMISE = "no_such_promise"
    ORDER_UNKNOWN = "order_unknown"
    ORDER_OF_ANOTHER_CUSTOMER = "order_of_another_customer"
    ORDER_AT_ANOTHER_MERCHANT = "order_at_another_merchant"
    ORDER_AMOUNT_MISMATCH = "order_amount_mismatch"
    ORDER_CURRENCY_MISMATCH = "order_currency_mismatch"
    ORDER_RETURNED = "order_returned"
    FILED_BEFORE_ORDER = "filed_before_order"
    CLAIM_WINDOW_CLOSED = "claim_window_closed"


@dataclass(frozen=True)
class ClaimScreening:
    """The screening verdict; `explanation` is meant for the customer and the admin."""

    outcome: ScreeningOutcome
    reason: ClaimReason | None = None
    explanation: str = ""


def _refusal(reason: ClaimReason, explanation: str) -> ClaimScreening:
    return ClaimScreening(ScreeningOutcome.REJECT, reason, explanation)


def order_problem(
    customer_id: str, merchant_id: str, order_id: str, order: KnownOrder
) -> ClaimScreening | None:
    """A refusal when the recorded order is another customer's or another merchant's."""
    if order.customer_id != customer_id:
        return _refusal(
            ClaimReason.ORDER_OF_ANOTHER_CUSTOMER,
            f"order {order_id} was not made by customer {customer_id}",
        )
    if order.merchant_id != merchant_id:
        return _refusal(
            ClaimReason.ORDER_AT_ANOTHER_MERCHANT,
            f"order {order_id} was not placed at merchant {merchant_id}",
        )
    return None


def stated_amount_problem(
    amount_minor: int | None, currency: str | None, order: KnownOrder
) -> ClaimScreening | None:
    """A refusal when a stated amount or currency differs from the recorded purchase, or the
    order was returned in full.

    Omitted values are taken from the record; stated ones must equal what was paid.
    """
    if currency is not None and currency != order.currency:
        return _refusal(
            ClaimReason.ORDER_CURRENCY_MISMATCH,
            f"order {order.order_id} was paid in {order.currency}, not {currency}",
        )
    if amount_minor is not None and amount_minor != order.amount_minor:
        return _refusal(
            ClaimReason.ORDER_AMOUNT_MISMATCH,
            f"the stated amount differs from what was paid for order {order.order_id}",
        )
    if order.returned_in_full:
        return _refusal(
            ClaimReason.ORDER_RETURNED,
            f"order {order.order_id} was returned in full: nothing is left to compensate",
        )
    return None


def _order_problem(claim: GuaranteeClaim, order: KnownOrder) -> ClaimScreening | None:
    return order_problem(claim.customer_id, claim.merchant_id, claim.order_id, order)


def _timing_problem(
    claim: GuaranteeClaim, order: KnownOrder, window: timedelta
) -> ClaimScreening | None:
    if claim.filed_at < order.ordered_at:
        return _refusal(
            ClaimReason.FILED_BEFORE_ORDER,
            f"the claim was filed before order {claim.order_id} was placed",
        )
    if claim.filed_at > order.ordered_at + window:
        return _refusal(
            ClaimReason.CLAIM_WINDOW_CLOSED,
            f"claims for order {claim.order_id} had to be filed within {window.days} days "
            f"of the order (by {(order.ordered_at + window).isoformat()})",
        )
    return None


def screen_claim(
    claim: GuaranteeClaim, order: KnownOrder | None, policy: GuaranteePolicy | None
) -> ClaimScreening:
    """Accept, reject with a reason, or send a claim to manual review.

    `order` is what this service knows of the claimed order (None: not heard of);
    `policy` is the merchant's policy for the claimed promise (None: no such promise).
    """
    if policy is None:
        return _refusal(
            ClaimReason.NO_SUCH_PROMISE,
            f"merchant {claim.merchant_id} makes no {claim.promise} promise",
        )
    if order is None:
        return ClaimScreening(
            ScreeningOutcome.MANUAL_REVIEW,
            ClaimReason.ORDER_UNKNOWN,
            f"order {claim.order_id} is not known yet; a person will check it",
        )
    problem = _order_problem(claim, order) or _timing_problem(claim, order, policy.claim_window)
    return problem or ClaimScreening(ScreeningOutcome.ACCEPT)


def escalate_at(filed_at: datetime) -> datetime:
    """When an undecided claim must reach a manager (12 hours after filing)."""
    return require_aware(filed_at, "the claim filing time") + ESCALATE_AFTER


def decide_by(filed_at: datetime) -> datetime:
    """When a claim must have its answer (24 hours after filing)."""
    return require_aware(filed_at, "the claim filing time") + DECIDE_WITHIN


@dataclass(frozen=True)
class OpenClaim:
    """A claim as the green channel tracks it."""

    claim_id: str
    filed_at: datetime
    decided_at: datetime | None = None
    escalated_at: datetime | None = None

    def __post_init__(self) -> None:
        require_aware(self.filed_at, "the claim filing time")
        for moment in (self.decided_at, self.escalated_at):
            if moment is not None:
                require_aware(moment, "a claim decision or escalation time")

    def is_undecided_at(self, now: datetime) -> bool:
        """True when no decision had been made by `now`."""
        return self.decided_at is None or self.decided_at > now


def claims_to_escalate(claims: Iterable[OpenClaim], now: datetime) -> tuple[OpenClaim, ...]:
    """Undecided claims at least 12 hours old and not escalated yet, oldest first."""
    require_aware(now, "now")
    due = [
        c
        for c in claims
        if c.is_undecided_at(now) and c.escalated_at is None and escalate_at(c.filed_at) <= now
    ]
    return tuple(sorted(due, key=lambda c: (c.filed_at, c.claim_id)))


def overdue_claims(claims: Iterable[OpenClaim], now: datetime) -> tuple[OpenClaim, ...]:
    """Claims still undecided past their 24-hour deadline, most overdue first."""
    require_aware(now, "now")
    late = [c for c in claims if c.is_undecided_at(now) and decide_by(c.filed_at) <= now]
    return tuple(sorted(late, key=lambda c: (c.filed_at, c.claim_id)))


def was_decided_late(claim: OpenClaim) -> bool:
    """True when a claim got its answer after the 24-hour deadline (for the report)."""
    return claim.decided_at is not None and claim.decided_at > decide_by(claim.filed_at)
