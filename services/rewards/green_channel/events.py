"""The green channel's events: escalations (to operations) and overdue announcements.

Ids are derived from the claim or compensation, so a retried pass re-derives the same id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from services.rewards.domain.guarantee_claims import DECIDE_WITHIN, decide_by
from shared.contracts.rewards import (
    ClaimEscalated,
    ClaimEscalatedData,
    CompensationEscalated,
    CompensationEscalatedData,
    ReviewOverdue,
    ReviewOverdueData,
    rewards_envelope,
)


def claim_escalated(row: Any, at: datetime) -> ClaimEscalated:
    """A guarantee claim undecided 12 hours after filing, for a manager."""
    data = ClaimEscalatedData(
        claim_id=str(row.claim_id),
        merchant_id=row.merchant_id,
        order_id=row.order_id,
        promise_kind=row.promise_kind,
        filed_at=row.filed_at,
        decide_by=decide_by(row.filed_at),
    )
    return rewards_envelope(ClaimEscalated, row.customer_id, row.claim_id, at, data)


def compensation_escalated(row: Any, at: datetime) -> CompensationEscalated:
    """A compensation held 12 hours undecided, for a manager."""
    data = CompensationEscalatedData(
        compensation_id=str(row.compensation_id),
        merchant_id=row.merchant_id,
        order_id=row.order_id,
        promise_kind=row.promise_kind,
        tier=row.tier,
        reasons=list(row.review_reasons) or ["held"],
        held_since=row.created_at,
        decide_by=row.created_at + DECIDE_WITHIN,
    )
    return rewards_envelope(CompensationEscalated, row.customer_id, row.compensation_id, at, data)


def compensation_overdue(row: Any, at: datetime) -> ReviewOverdue:
    data = _overdue(row, "compensation", row.compensation_id, row.created_at, row.review_reasons)
    return rewards_envelope(ReviewOverdue, row.customer_id, row.compensation_id, at, data)


def claim_overdue(row: Any, at: datetime) -> ReviewOverdue:
    data = _overdue(row, "claim", row.claim_id, row.filed_at, [row.reason] if row.reason else [])
    return rewards_envelope(ReviewOverdue, row.customer_id, row.claim_id, at, data)


def _overdue(
    row: Any,
    subject: Literal["claim", "compensation"],
    subject_id: Any,
    since: datetime,
    reasons: list[str],
) -> ReviewOverdueData:
    return ReviewOverdueData(
        subject=subject,
        subject_id=str(subject_id),
        merchant_id=row.merchant_id,
        order_id=row.order_id,
        promise_kind=row.promise_kind,
        since=since,
        decide_by=since + DECIDE_WITHIN,
        reasons=list(reasons),
    )
