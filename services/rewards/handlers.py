"""The rewards consumer's registry: event type -> the concept handler that takes it.

Consumed: every `loyalty.points` event (`customers.handlers`: the projection, milestones,
referrals, and the points side's answers in the catalogue saga), `service.incident` from
operations (`incidents.handlers`), and `purchase.completed` / `purchase.returned` from
`pos.purchases` (`orders.handlers`: the order record compensation is paid on). Each
handler gets the batch's unit of work (`RewardsUnitOfWork.of_batch`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import sqlalchemy as sa

from services.rewards.configuration.service import ConfigCache
from services.rewards.customers.handlers import points_events
from services.rewards.incidents.handlers import incidents
from services.rewards.orders.handlers import purchases, returns
from services.rewards.settings import RewardsTopics
from services.rewards.uow import RewardsUnitOfWork
from shared.contracts.points import POINTS_EVENTS
from shared.kafka.handlers import BatchContext, BatchHandler, HandlerRegistry

Handler = Callable[[RewardsUnitOfWork, Sequence[Any]], Awaitable[None]]

# A consumer batch's statements take arrays of 1 to thousands of keys, on tables that grow
# from empty. PostgreSQL plans a prepared statement (the driver prepares every one) five
# times for its parameters, then may keep one generic plan, costed on the table as it was
# then: in `python -m bench rewards` the breach read kept a sequential scan planned on the
# empty table (estimate 10 rows) and the customers' grants a scan of the merchant's index,
# both a little slower with every batch, until autovacuum's ANALYZE invalidated them,
# whenever it came (PostgreSQL 326 us of CPU per incident; planned for each batch's
# arrays, 114). Planning costs a few statements' worth per batch, not per incident.
_CUSTOM_PLANS = sa.text("SET LOCAL plan_cache_mode = force_custom_plan")
_PLANNED = "rewards: custom plans"  # ctx.state key: the setting is taken once per transaction


def rewards_registry(
    topics: RewardsTopics | None = None,
    default_voucher_days: int = 30,
    config: ConfigCache | None = None,
) -> HandlerRegistry:
    """The rewards service's handlers; `topics` is where its events go. Their batches
    share one configuration cache (`config`, else a new one), checked once per batch."""
    where = topics or RewardsTopics()
    lasting = config or ConfigCache(lasting=True)
    registry = HandlerRegistry()

    def in_batch(handler: Handler) -> BatchHandler:
        async def run(ctx: BatchContext, events: Sequence[Any]) -> None:
            if _PLANNED not in ctx.state:
                await ctx.conn.execute(_CUSTOM_PLANS)
                ctx.state[_PLANNED] = True
            uow = RewardsUnitOfWork.of_batch(ctx).configured(where, default_voucher_days, lasting)
            await handler(uow, events)

        return run

    for event_type, handler in HANDLERS.items():
        registry.batch(event_type)(in_batch(handler))
    return registry


HANDLERS: dict[str, Handler] = {
    **{model.model_fields["type"].annotation.__args__[0]: points_events for model in POINTS_EVENTS},  # type: ignore[union-attr]
    "service.incident": incidents,
    "purchase.completed": purchases,
    "purchase.returned": returns,
}
