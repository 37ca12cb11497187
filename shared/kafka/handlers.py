"""Handler registry: event type -> function applying a run of events of that type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.envelope import EventEnvelope
from shared.outbox import OutboxWriter


@dataclass
class BatchContext:
    """What a handler may touch: the batch's transaction and its outbox."""

    conn: AsyncConnection
    outbox: OutboxWriter
    now: datetime
    state: dict[str, Any] = field(default_factory=dict)  # per-batch scratch space for handlers


BatchHandler = Callable[[BatchContext, Sequence[Any]], Awaitable[None]]
EventHandler = Callable[[BatchContext, Any], Awaitable[None]]


class HandlerRegistry:
    """Maps an event type to a batch handler.

    A type that is in the contracts but has no handler here is one this service
    does not care about (topics are shared): it is recorded as processed and skipped.
    A type missing from the contracts never reaches this point: it is dead-lettered.
    """

    def __init__(self) -> None:
        self.handlers: dict[str, BatchHandler] = {}

    def batch(self, event_type: str) -> Callable[[BatchHandler], BatchHandler]:
        """Register a handler receiving consecutive events of one type, in order."""

        def decorate(fn: BatchHandler) -> BatchHandler:
            self.handlers[event_type] = fn
            return fn

        return decorate

    def each(self, event_type: str) -> Callable[[EventHandler], EventHandler]:
        """Register a handler called once per event."""

        def decorate(fn: EventHandler) -> EventHandler:
            async def run(ctx: BatchContext, events: Sequence[EventEnvelope]) -> None:
                for event in events:
                    await fn(ctx, event)

            self.handlers[event_type] = run
            return fn

        return decorate
