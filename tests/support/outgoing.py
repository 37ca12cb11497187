"""What a service's outbox writes for the events a use case emits."""

from __future__ import annotations

from collections.abc import Iterable

from shared.contracts.envelope import EventEnvelope
from shared.contracts.registry import decode_event
from shared.outbox import OutboxWriter, Outgoing


def wire(events: Iterable[Outgoing]) -> list[bytes]:
    """Each event's bytes, as the outbox writes them (an encoded event's as they are)."""
    outbox = OutboxWriter()
    for event in events:
        outbox.emit("topic", event)
    return [message.value for message in outbox.pending]


def decoded(events: Iterable[Outgoing]) -> list[EventEnvelope]:
    """Each event as its consumers read it: its bytes, validated by its contract."""
    return [decode_event(value) for value in wire(events)]
