"""The points consumer's registry: which concept handler takes each event type.

Each handler receives a run of consecutive events of its type (already deduplicated by
event id by the runtime, inside the batch's transaction) and the topic its outgoing
events go to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from services.points.accrual.handlers import on_credits_requested, on_purchases_completed
from services.points.redemptions.handlers import (
    on_debit_reversals_requested,
    on_debits_requested,
)
from services.points.returns.handlers import on_purchases_returned
from shared.contracts.topics import Topics
from shared.kafka.handlers import HandlerRegistry

# (ctx, events, *, points_topic) -> None: a run of events of one type, and where to answer
Handler = Callable[..., Awaitable[None]]


def points_registry(points_topic: str = Topics.POINTS) -> HandlerRegistry:
    """The points service's handlers; `points_topic` is where its events go."""
    registry = HandlerRegistry()
    for event_type, handler in HANDLERS.items():
        registry.batch(event_type)(partial(handler, points_topic=points_topic))
    return registry


HANDLERS: dict[str, Handler] = {
    "purchase.completed": on_purchases_completed,
    "purchase.returned": on_purchases_returned,
    "points.credit_requested": on_credits_requested,
    "points.debit_requested": on_debits_requested,
    "points.debit_reversal_requested": on_debit_reversals_requested,
}
