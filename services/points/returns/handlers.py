"""Consumer handler of returns: wraps the batch's transaction and calls the use case."""

from __future__ import annotations

from collections.abc import Sequence

from services.points.returns.service import apply_returns
from services.points.uow import PointsUnitOfWork
from shared.contracts.pos import PurchaseReturned
from shared.kafka.handlers import BatchContext


async def on_purchases_returned(
    ctx: BatchContext, events: Sequence[PurchaseReturned], points_topic: str
) -> None:
    """purchase.returned -> proportional reversal, or parked until the order arrives."""
    await apply_returns(PointsUnitOfWork.of_batch(ctx), events, points_topic)
