"""Outgoing events of the rewards service, with ids derived from their cause.

Re-deriving an event from the same cause (a replay, a retried job) gives the same id,
so downstream consumers deduplicate it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.contracts.envelope import EventEnvelope, derived_event_id
from shared.contracts.registry import EVENT_MODELS

SOURCE = "rewards"


def rewards_event(
    event_type: str, customer_id: str, cause: uuid.UUID | str, at: datetime, data: dict[str, Any]
) -> EventEnvelope:
    """A validated event of `event_type` whose id is derived from `cause` and the type."""
    model = EVENT_MODELS[(event_type, 1)]
    return model.model_validate(
        {
            "event_id": derived_event_id(cause, event_type),
            "type": event_type,
            "version": 1,
            "occurred_at": at,
            "source": SOURCE,
            "customer_id": customer_id,
            "data": data,
        }
    )
