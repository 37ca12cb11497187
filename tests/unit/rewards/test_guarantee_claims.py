"""Guarantee claims from partner apps: abuse screening and the 12 h / 24 h green channel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.rewards.domain.errors import NaiveDatetimeError
from services.rewards.domain.guarantee import (
    GuaranteePolicy,
    GuaranteeTier,
    MeasureUnit,
    PromiseKind,
    VoucherCompensation,
    restaurant_dish_wait_policy,
)
from services.rewards.domain.guarantee_claims import (
    ClaimReason,
    GuaranteeClaim,
    KnownOrder,
    OpenClaim,
    ScreeningOutcome,
    claims_to_escalate,
    decide_by,
    escalate_at,
    overdue_claims,
    screen_claim,
    was_decided_late,
)

ORDERED = datetime(2025, 5, 1, 19, 0, tzinfo=UTC)
POLICY = restaurant_dish_wait_policy("m1")
ORDER = KnownOrder("o-1", "c1", "m1", ORDERED)


def claim(*, customer: str = "c1", merchant: str = "m1", after: timedelta) -> GuaranteeClaim:
    return GuaranteeClaim(
        "claim-1", customer, merchant, "o-1", PromiseKind.DISH_WAIT_TIME, ORDERED + after
    )


def test_customer_claim_on_own_order_within_the_window_is_accepted() -> None:
    verdict = screen_claim(claim(after=timedelta(days=2)), ORDER, POLICY)
    assert verdict.outcome is ScreeningOutcome.ACCEPT, f"an honest claim was refused: {verdict}"


def test_claim_on_the_last_moment_of_the_window_is_accepted() -> None:
    verdict = screen_claim(claim(after=timedelta(days=7)), ORDER, POLICY)
    assert verdict.outcome is ScreeningOutcome.ACCEPT, "7 days after the order is still in time"


def test_claim_after_the_default_7_day_window_is_rejected_with_reason() -> None:
    verdict = screen_claim(claim(after=timedelta(days=7, seconds=1)), ORDER, POLICY)
    assert verdict.outcome is ScreeningOutcome.REJECT, "a claim after 7 days must be rejected"
    assert verdict.reason is ClaimReason.CLAIM_WINDOW_CLOSED
    assert "7 days" in verdict.explanation, f"the customer must read why: {verdict.explanation}"


def test_a_merchant_may_set_a_longer_claim_window() -> None:
    policy = GuaranteePolicy(
        "m1",
        PromiseKind.DISH_WAIT_TIME,
        MeasureUnit.MINUTES,
        (GuaranteeTier(10, (VoucherCompensation("fruit-plate"),)),),
        claim_window=timedelta(days=30),
    )
    verdict = screen_claim(claim(after=timedelta(days=20)), ORDER, policy)
    assert verdict.outcome is ScreeningOutcome.ACCEPT, "20 days is inside a 30-day window"


@pytest.mark.parametrize(
    ("filed", "reason"),
    [
        (claim(customer="c2", after=timedelta(hours=1)), ClaimReason.ORDER_OF_ANOTHER_CUSTOMER),
        (claim(merchant="m2", after=timedelta(hours=1)), ClaimReason.ORDER_AT_ANOTHER_MERCHANT),
        (claim(after=-timedelta(hours=1)), ClaimReason.FILED_BEFORE_ORDER),
    ],
)
def test_abusive_claims_are_rejected_with_a_clear_reason(
    filed: GuaranteeClaim, reason: ClaimReason
) -> None:
    verdict = screen_claim(filed, ORDER, POLICY)
    assert (verdict.outcome, verdict.reason) == (ScreeningOutcome.REJECT, reason), (
        f"expected a rejection for {reason}, got {verdict}"
    )
    assert verdict.explanation, "a rejection must explain itself"


def test_claim_for_a_promise_the_merchant_does_not_make_is_rejected() -> None:
    verdict = screen_claim(claim(after=timedelta(hours=1)), ORDER, None)
    assert verdict.reason is ClaimReason.NO_SUCH_PROMISE, f"got {verdict}"
    assert verdict.outcome is ScreeningOutcome.REJECT


def test_claim_for_an_order_unknown_yet_goes_to_a_person() -> None:
    verdict = screen_claim(claim(after=timedelta(hours=1)), None, POLICY)
    assert verdict.outcome is ScreeningOutcome.MANUAL_REVIEW, (
        "an order whose event has not arrived must be checked by a person, not refused"
    )
    assert verdict.reason is ClaimReason.ORDER_UNKNOWN


FILED = datetime(2025, 5, 2, 8, 0, tzinfo=UTC)


def test_green_channel_deadlines() -> None:
    assert escalate_at(FILED) == FILED + timedelta(hours=12), "escalation is due after 12 hours"
    assert decide_by(FILED) == FILED + timedelta(hours=24), "a decision is due within 24 hours"


def test_undecided_claims_escalate_after_12_hours_once() -> None:
    claims = [
        OpenClaim("fresh", FILED + timedelta(hours=2)),
        OpenClaim("old", FILED),
        OpenClaim("decided", FILED, decided_at=FILED + timedelta(hours=1)),
        OpenClaim("escalated", FILED, escalated_at=FILED + timedelta(hours=12)),
        OpenClaim("older", FILED - timedelta(hours=1)),
    ]
    due = claims_to_escalate(claims, FILED + timedelta(hours=12))
    assert [c.claim_id for c in due] == ["older", "old"], (
        "only undecided, not yet escalated claims 12 h old escalate, oldest first"
    )


def test_overdue_report_lists_undecided_claims_past_24_hours() -> None:
    now = FILED + timedelta(hours=30)
    claims = [
        OpenClaim("late", FILED),
        OpenClaim("in-time", FILED + timedelta(hours=10)),
        OpenClaim("answered", FILED, decided_at=FILED + timedelta(hours=25)),
        OpenClaim(
            "answered-after-now", FILED + timedelta(hours=1), decided_at=now + timedelta(hours=1)
        ),
    ]
    overdue = [c.claim_id for c in overdue_claims(claims, now)]
    assert overdue == ["late", "answered-after-now"], (
        f"claims unanswered 24 h after filing are overdue at {now}, most overdue first: {overdue}"
    )
    assert was_decided_late(claims[2]), "an answer after 25 hours missed the 24-hour promise"
    assert not was_decided_late(OpenClaim("ok", FILED, decided_at=FILED + timedelta(hours=23)))


def test_naive_times_are_refused() -> None:
    with pytest.raises(NaiveDatetimeError):
        overdue_claims([], datetime(2025, 5, 2))
    with pytest.raises(NaiveDatetimeError):
        OpenClaim("x", datetime(2025, 5, 2))
