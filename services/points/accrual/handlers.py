"""Consumer handlers of accrual: each wraps the batch's transaction and calls the use case."""

from __future__ import annotations

from collections.abc import Sequence

from services.points.accrual.service import accrue_purchases, credit_points
from services.points.uow import PointsUnitOfWork
from shared.contracts.pos import PurchaseCompleted
from shared.contracts.rewards import PointsCreditRequested
from shared.kafka.handlers import BatchContext


async def on_purchases_completed(
    ctx: BatchContext, events: Sequence[PurchaseCompleted], points_topic: str
) -> None:
    """purchase.completed -> accrual (0 points included), parked returns applied."""
    await accrue_purchases(PointsUnitOfWork.of_batch(ctx), events, points_topic)


async def on_credits_requested(
    ctx: BatchContext, events: Sequence[PointsCreditRequested], points_topic: str
) -> None:
    """points.credit_requested -> a lot available at once, applied once per credit id."""
    await credit_points(PointsUnitOfWork.of_batch(ctx), events, points_topic)
