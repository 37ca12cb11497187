"""Consumer handlers of the rewards catalogue saga (requests arrive on `loyalty.rewards`):
a claim's debit is a redemption, its reversal a cancellation (see `service`)."""

from __future__ import annotations

from collections.abc import Sequence

from services.points.redemptions.service import debit_for_claims, reverse_claim_debits
from services.points.uow import PointsUnitOfWork
from shared.contracts.rewards import PointsDebitRequested, PointsDebitReversalRequested
from shared.kafka.handlers import BatchContext


async def on_debits_requested(
    ctx: BatchContext, events: Sequence[PointsDebitRequested], points_topic: str
) -> None:
    """points.debit_requested -> the claim's redemption, answered debited or rejected."""
    await debit_for_claims(PointsUnitOfWork.of_batch(ctx), events, points_topic)


async def on_debit_reversals_requested(
    ctx: BatchContext, events: Sequence[PointsDebitReversalRequested], points_topic: str
) -> None:
    """points.debit_reversal_requested -> the claim's redemption cancelled, answered."""
    await reverse_claim_debits(PointsUnitOfWork.of_batch(ctx), events, points_topic)
