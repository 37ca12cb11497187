"""The commands a catalogue claim sends the points service: spend, or give back."""

from __future__ import annotations

import uuid
from datetime import datetime

from shared.contracts.rewards import (
    PointsDebitRequested,
    PointsDebitRequestedData,
    PointsDebitReversalRequested,
    PointsDebitReversalRequestedData,
    rewards_envelope,
)


def debit_requested(
    customer_id: str, claim_id: uuid.UUID, points: int, merchant_id: str, item_id: str, at: datetime
) -> PointsDebitRequested:
    """Spend the claim's points (the claim id is the debit id: debited at most once)."""
    data = PointsDebitRequestedData(
        debit_id=str(claim_id),
        points=points,
        merchant_id=merchant_id,
        reference=f"catalogue:{item_id}",
    )
    return rewards_envelope(PointsDebitRequested, customer_id, claim_id, at, data)


def debit_reversal_requested(
    customer_id: str, claim_id: uuid.UUID, reason: str, cause: uuid.UUID, at: datetime
) -> PointsDebitReversalRequested:
    """Give back the claim's debit; the id is derived from `cause` (what asked for it)."""
    data = PointsDebitReversalRequestedData(debit_id=str(claim_id), reason=reason)
    return rewards_envelope(PointsDebitReversalRequested, customer_id, cause, at, data)
