"""A service's background work inside its FastAPI lifespan: the outbox relay and its workers.

Every service runs the same shape: a producer and an `OutboxRelay` (registered for
`/metrics`), then its consumer, scanners and periodic jobs as asyncio tasks, each woken
or stopped alike. Shutdown order matters for delivery: stop the workers first (the
consumer finishes and commits its batch in flight), then the relay, then one last relay
pass so what they committed goes out now rather than at the next start, then the producer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from shared.http.app import register_outbox_relay
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)
DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class Worker:
    """One long-running task: how to run it and how to ask it to finish."""

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]
    stop: Callable[[], None]


def watched(service: str, name: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task whose crash is logged at once, not only when shutdown awaits it."""

    def report(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical("%s %s stopped: %r", service, name, task.exception())

    task = asyncio.create_task(work, name=f"{service}-{name}")
    task.add_done_callback(report)
    return task


@asynccontextmanager
async def service_workers(
    app: FastAPI,
    service: str,
    kafka: KafkaSettings,
    *,
    outbox_batch: int,
    workers: Callable[[OutboxRelay], Sequence[Worker]],
    relay_label: str | None = None,
) -> AsyncIterator[OutboxRelay]:
    """Run the relay and `workers(relay)` until the app shuts down, then stop them in order.

    `relay_label` names the relay in metrics (default: the service name).
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        client_id=f"{kafka.client_id_prefix}-{service}-relay",
        linger_ms=5,
    )
    await producer.start()
    try:
        relay = OutboxRelay(
            app.state.engine,
            producer,
            service=relay_label or service,
            batch_size=outbox_batch,
        )
        register_outbox_relay(app, relay)
        running = list(workers(relay))
        relay_task = watched(service, "relay", relay.run())
        tasks = [watched(service, worker.name, worker.run()) for worker in running]
        try:
            yield relay
        finally:
            for worker in running:
                worker.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            relay.stop()
            await asyncio.gather(relay_task, return_exceptions=True)
            await _drain(service, relay)
    finally:
        await producer.stop()


async def _drain(service: str, relay: OutboxRelay) -> None:
    """One last relay pass; what it cannot send stays in the outbox for the next start."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while await relay.relay_once() == relay.batch_size:
                pass
    except Exception as exc:
        log.warning("%s outbox not drained at shutdown (kept for the next start): %r", service, exc)
