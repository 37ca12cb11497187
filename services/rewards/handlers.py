"""Event -> rules -> database for the rewards consumer, and its registry.

Consumed: every `loyalty.points` event (the projection, milestones, referrals, and the
points side's answers in the catalogue saga), `service.incident` from operations, and
`purchase.completed` / `purchase.returned` from `pos.purchases` (the order record that
compensation is paid on, `orders.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

from services.rewards.catalogue import apply_debit_answers
from services.rewards.compensation import Delivery
from services.rewards.incidents import apply_incidents
from services.rewards.milestones import on_projection_change
from services.rewards.projection import project
from services.rewards.purchases import apply_purchases, apply_returns
from services.rewards.returned_points import record_returned_redemptions
from services.rewards.topics import RewardsTopics
from shared.contracts.envelope import EventEnvelope
from shared.contracts.points import POINTS_EVENTS
from shared.contracts.pos import PurchaseCompleted, PurchaseReturned, ServiceIncident
from shared.kafka.handlers import BatchContext, HandlerRegistry

_SAGA_ANSWERS = ("points.debited", "points.debit_rejected", "points.debit_reversed")


def rewards_registry(
    topics: RewardsTopics | None = None, default_voucher_days: int = 30
) -> HandlerRegistry:
    """The rewards service's handlers; `topics` is where its events go."""
    where = topics or RewardsTopics()
    registry = HandlerRegistry()

    def delivery(ctx: BatchContext) -> Delivery:
        return Delivery(ctx.outbox, where, default_voucher_days)

    async def points_events(ctx: BatchContext, events: Sequence[EventEnvelope]) -> None:
        await project(ctx, events, on_projection_change(delivery(ctx)))
        if events[0].type in _SAGA_ANSWERS:
            await apply_debit_answers(ctx, events, delivery(ctx))
        elif events[0].type == "points.redemption_cancelled":
            await record_returned_redemptions(ctx, events)

    for model in POINTS_EVENTS:
        registry.batch(model.model_fields["type"].annotation.__args__[0])(points_events)  # type: ignore[union-attr]

    @registry.batch("service.incident")
    async def incidents(ctx: BatchContext, events: Sequence[ServiceIncident]) -> None:
        await apply_incidents(ctx, events, delivery(ctx))

    @registry.batch("purchase.completed")
    async def purchases(ctx: BatchContext, events: Sequence[PurchaseCompleted]) -> None:
        await apply_purchases(ctx, events, delivery(ctx))

    @registry.batch("purchase.returned")
    async def returns(ctx: BatchContext, events: Sequence[PurchaseReturned]) -> None:
        await apply_returns(ctx, events)

    return registry
