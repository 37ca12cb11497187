"""The event envelope every message on every topic carries."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Namespace for ids derived from another event, so a replay re-derives the same id
# and downstream deduplication sees the same event.
_DERIVED_NAMESPACE = uuid.UUID("6f1c2a0e-5a55-4a5e-9d5e-3f0c1f0b7a11")


class EventEnvelope(BaseModel):
    """Common fields; `data` is refined by each event type's model.

    Unknown top-level fields are kept (extra="allow") so that a newer producer's
    additions survive a pass through an older service.
    """

    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=False)

    event_id: uuid.UUID = Field(description="Idempotency key: the same event always has this id.")
    type: str = Field(pattern=r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$", examples=["purchase.completed"])
    version: int = Field(ge=1, le=1000)
    occurred_at: AwareDatetime = Field(description="RFC 3339 with a timezone offset.")
    source: str = Field(min_length=1, max_length=200)
    customer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@-]+$")
    data: Any


def derived_event_id(parent_event_id: uuid.UUID | str, purpose: str) -> uuid.UUID:
    """A deterministic id for an event caused by another (same input -> same id)."""
    return uuid.uuid5(_DERIVED_NAMESPACE, f"{parent_event_id}:{purpose}")
