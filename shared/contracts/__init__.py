"""Event contracts: the envelope, every event model, topics and the type registry."""

from shared.contracts.envelope import EventEnvelope, derived_event_id
from shared.contracts.registry import (
    EVENT_MODELS,
    ContractError,
    decode_event,
    encode_event,
    register,
)
from shared.contracts.topics import Topics, dead_letter_topic

__all__ = [
    "EVENT_MODELS",
    "ContractError",
    "EventEnvelope",
    "Topics",
    "dead_letter_topic",
    "decode_event",
    "derived_event_id",
    "encode_event",
    "register",
]
