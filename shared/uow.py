"""The unit of work: one transaction and its outbox, for an HTTP request or a consumed batch.

A service's own unit of work subclasses `UnitOfWork` and adds its repositories (built on
`self.conn`), so a use case loads, changes and saves through one object and never
commits: `begin()` commits on success, after writing the queued events to the outbox in
the same transaction, and rolls back on error. A consumer batch already runs in the
runtime's transaction; `of_batch()` wraps that one, and the runtime commits it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.kafka.handlers import BatchContext
from shared.outbox import OutboxWriter, Outgoing


class UnitOfWork:
    """The transaction a use case works in, the events it emits, and the time it runs at."""

    def __init__(self, conn: AsyncConnection, outbox: OutboxWriter, now: datetime) -> None:
        self.conn = conn
        self.outbox = outbox
        self.now = now

    def emit(self, topic: str, event: Outgoing) -> None:
        """Queue an event; it reaches the outbox in this transaction, or not at all."""
        self.outbox.emit(topic, event)

    @classmethod
    @asynccontextmanager
    async def begin(cls, engine: AsyncEngine, clock: Callable[[], datetime]) -> AsyncIterator[Self]:
        """A new transaction: commits with its outbox on success, rolls back on error."""
        async with engine.begin() as conn:
            uow = cls(conn, OutboxWriter(), clock())
            yield uow
            await uow.outbox.flush(conn)

    @classmethod
    def of_batch(cls, ctx: BatchContext) -> Self:
        """The consumer batch's transaction and outbox (the runtime flushes and commits)."""
        return cls(ctx.conn, ctx.outbox, ctx.now)
