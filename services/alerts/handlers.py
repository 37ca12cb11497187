"""The alerts consumer's registry: which concept handler takes each consumed event type.

Topics are shared, so most event types on them are none of this service's business. The
runtime records a type that is in the contracts but has no handler here as processed and skips
it; only a type missing from the contracts is dead-lettered. What is consumed:

* `pos.purchases`: `purchase.completed` and `purchase.returned` build the activity summaries;
  `ops.service-incidents` types, should they ever arrive there, are skipped;
* `loyalty.points`: every points event carries the account snapshot, tier included, so each
  one keeps the customer's tier current for the value segment (`tier.changed` says it first,
  but an accrual that follows it carries it too, and a lost or late `tier.changed` is healed
  by the next snapshot); an older snapshot never overwrites a newer tier;
* `loyalty.rewards`: nothing it carries today changes a lapse verdict (a credit request is
  not a purchase), so its known types are skipped; subscribing keeps the service ready for
  reward redemptions as activity without a new deployment of the wiring.
"""

from __future__ import annotations

from typing import get_args

from services.alerts.activity import handlers as activity
from shared.contracts.envelope import EventEnvelope
from shared.contracts.points import POINTS_EVENTS
from shared.contracts.topics import Topics
from shared.kafka.handlers import BatchHandler, HandlerRegistry


def alerts_registry(alerts_topic: str = Topics.ALERTS) -> HandlerRegistry:
    """The alerts service's handlers; `alerts_topic` is where its own events go."""
    registry = HandlerRegistry()
    for event_type, handler in handlers(alerts_topic).items():
        registry.batch(event_type)(handler)
    return registry


def _event_type(model: type[EventEnvelope]) -> str:
    (literal,) = get_args(model.model_fields["type"].annotation)
    return str(literal)


def handlers(alerts_topic: str) -> dict[str, BatchHandler]:
    """Event type -> the concept handler that takes it."""
    return {
        "purchase.completed": activity.on_purchases(alerts_topic),
        "purchase.returned": activity.on_returns,
        **{_event_type(model): activity.on_points_event for model in POINTS_EVENTS},
    }
