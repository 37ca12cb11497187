"""The points service as one process: HTTP API, consumer, outbox relay and due-time jobs.

`build_app` wires the chassis app with the partner and admin routers. With
`settings.run_workers` (the default) its lifespan also runs, as asyncio tasks:
- the consumer of `pos.purchases` and `loyalty.rewards` (exactly once, see shared.kafka);
- the outbox relay publishing to `loyalty.points`, woken after every committed batch;
- the due-time jobs (expiry, yearly tier review) every `jobs_interval_seconds`;
- the `loyalty_points_outstanding` gauge, recounted every `outstanding_gauge_interval_seconds`.
On shutdown (SIGTERM through uvicorn) the consumer finishes and commits its batch in
flight, then the jobs and the relay stop, then the engine is disposed by the chassis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from services.points.api import router as partner_router
from services.points.api_admin import router as admin_router
from services.points.api_support import Clock, RuleBookCache, read_engine
from services.points.expiry import run_due_jobs
from services.points.metrics import keep_outstanding_gauge
from services.points.service import build_consumer
from services.points.settings import PointsSettings
from shared.http.app import create_service_app, register_outbox_relay
from shared.kafka.runtime import utc_now
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)


def build_app(
    settings: PointsSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The points service app; `clock` (default: the real UTC clock) drives every rule."""
    settings = settings or PointsSettings()  # the environment supplies the URL
    kafka = kafka or KafkaSettings()
    app = create_service_app(
        "points",
        settings,
        kafka=kafka,
        routers=[partner_router, admin_router],
        lifespan_extras=[
            _reads(settings),
            *([_workers(settings, kafka)] if settings.run_workers else []),
        ],
        auth_cache_ttl=settings.auth_cache_seconds,
    )
    app.state.clock = clock or utc_now
    app.state.rule_cache = RuleBookCache(settings.rules_cache_seconds)
    return app


def _watched(name: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A background task whose crash is logged at once rather than at shutdown."""

    def report(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("points %s stopped: %r", name, task.exception())

    task = asyncio.create_task(work, name=f"points-{name}")
    task.add_done_callback(report)
    return task


def _reads(settings: PointsSettings) -> Any:
    @asynccontextmanager
    async def read_pool(app: FastAPI) -> AsyncIterator[None]:
        app.state.read_engine = read_engine(settings.database_url, settings.db_pool_size)
        try:
            yield
        finally:
            await app.state.read_engine.dispose()

    return read_pool


def _workers(settings: PointsSettings, kafka: KafkaSettings) -> Any:
    @asynccontextmanager
    async def run_workers(app: FastAPI) -> AsyncIterator[None]:
        engine, clock = app.state.engine, app.state.clock
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id=f"{kafka.client_id_prefix}-points-relay",
            linger_ms=5,
        )
        await producer.start()
        relay = OutboxRelay(
            engine, producer, service=settings.consumer_group, batch_size=settings.outbox_batch
        )
        register_outbox_relay(app, relay)
        consumer = build_consumer(
            settings, engine, kafka.bootstrap_servers, clock, after_commit=relay.wakeup.set
        )
        stopping = asyncio.Event()
        jobs = run_due_jobs(
            engine,
            clock,
            stopping,
            points_topic=settings.points_topic,
            interval_seconds=settings.jobs_interval_seconds,
        )
        gauge = keep_outstanding_gauge(
            engine, clock, stopping, settings.outstanding_gauge_interval_seconds
        )
        tasks = [
            _watched("consumer", consumer.run()),
            _watched("relay", relay.run()),
            _watched("jobs", jobs),
            _watched("outstanding gauge", gauge),
        ]
        try:
            yield
        finally:
            consumer.request_stop()
            stopping.set()
            await asyncio.gather(tasks[0], *tasks[2:], return_exceptions=True)
            relay.stop()
            await asyncio.gather(tasks[1], return_exceptions=True)
            await _drain(relay)  # what the consumer and the jobs committed last, if it can
            await producer.stop()

    return run_workers


async def _drain(relay: OutboxRelay) -> None:
    """One last relay pass; what it cannot send stays in the outbox for the next start."""
    try:
        async with asyncio.timeout(5):
            while await relay.relay_once() == relay.batch_size:
                pass
    except Exception as exc:
        log.warning("points outbox not drained at shutdown (kept for the next start): %r", exc)
