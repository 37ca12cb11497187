"""Consumer handlers of the events that make up a customer's activity (thin: each wraps the
batch in the unit of work and hands the run of events to its use case)."""

from __future__ import annotations

from collections.abc import Sequence

from services.alerts.activity import service
from services.alerts.uow import AlertsUnitOfWork
from shared.contracts.envelope import EventEnvelope
from shared.contracts.pos import PurchaseCompleted, PurchaseReturned
from shared.kafka.handlers import BatchContext, BatchHandler


def on_purchases(alerts_topic: str) -> BatchHandler:
    """`purchase.completed`; the service's own events go to `alerts_topic`."""

    async def handle(ctx: BatchContext, events: Sequence[PurchaseCompleted]) -> None:
        await service.record_purchases(AlertsUnitOfWork.of_batch(ctx), events, alerts_topic)

    return handle


async def on_returns(ctx: BatchContext, events: Sequence[PurchaseReturned]) -> None:
    """`purchase.returned`."""
    await service.record_returns(AlertsUnitOfWork.of_batch(ctx), events)


async def on_points_event(ctx: BatchContext, events: Sequence[EventEnvelope]) -> None:
    """Any points event: the account snapshot it carries keeps the tier current."""
    await service.record_snapshot_tiers(AlertsUnitOfWork.of_batch(ctx), events)
