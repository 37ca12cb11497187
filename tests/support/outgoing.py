"""What a service's outbox writes for the events a use case emits."""

from __future__ import annotations

from collections.abc import Iterable

from shared.outbox import OutboxWriter, Outgoing


def wire(events: Iterable[Outgoing]) -> list[bytes]:
    """Each event's bytes, as the outbox writes them (an encoded event's as they are)."""
    outbox = OutboxWriter()
    for event in events:
        outbox.emit("topic", event)
    return [message.value for message in outbox.pending]
