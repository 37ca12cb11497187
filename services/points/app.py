"""The points service as one process: HTTP API, consumer, outbox relay and due-time jobs.

`build_app` wires the chassis app with the partner and admin routers. With
`settings.run_workers` (the default) its lifespan also runs, as asyncio tasks:
- the consumer of `pos.purchases` and `loyalty.rewards` (exactly once, see shared.kafka);
- the outbox relay publishing to `loyalty.points`, woken after every committed batch;
- the due-time jobs (settlement, expiry, yearly tier review) every `jobs_interval_seconds`;
- the `loyalty_points_outstanding` gauge, recounted every `outstanding_gauge_interval_seconds`.
On shutdown (SIGTERM through uvicorn) the consumer finishes and commits its batch in
flight, then the jobs and the relay stop, then the engine is disposed by the chassis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.points.api import router as partner_router
from services.points.api_admin import router as admin_router
from services.points.api_support import Clock, RuleBookCache
from services.points.expiry import JobBatches, run_due_jobs
from services.points.metrics import keep_outstanding_gauge
from services.points.service import build_consumer
from services.points.settings import PointsSettings
from shared.db import create_read_pool
from shared.http.app import create_service_app
from shared.http.workers import Worker, service_workers
from shared.kafka.runtime import utc_now
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings


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


def _reads(settings: PointsSettings) -> Any:
    @asynccontextmanager
    async def read_pool(app: FastAPI) -> AsyncIterator[None]:
        app.state.read_pool = await create_read_pool(settings.database_url, settings.db_pool_size)
        try:
            yield
        finally:
            await app.state.read_pool.close()

    return read_pool


def _workers(settings: PointsSettings, kafka: KafkaSettings) -> Any:
    @asynccontextmanager
    async def run_workers(app: FastAPI) -> AsyncIterator[None]:
        engine, clock = app.state.engine, app.state.clock
        stopping = asyncio.Event()

        def workers(relay: OutboxRelay) -> list[Worker]:
            consumer = build_consumer(
                settings, engine, kafka.bootstrap_servers, clock, after_commit=relay.wakeup.set
            )
            return [
                Worker("consumer", consumer.run, consumer.request_stop),
                Worker(
                    "jobs",
                    lambda: run_due_jobs(
                        engine,
                        clock,
                        stopping,
                        points_topic=settings.points_topic,
                        interval_seconds=settings.jobs_interval_seconds,
                        batches=JobBatches(
                            settings.settlement_batch, settings.expiry_batch, settings.review_batch
                        ),
                    ),
                    stopping.set,
                ),
                Worker(
                    "outstanding-gauge",
                    lambda: keep_outstanding_gauge(
                        engine, clock, stopping, settings.outstanding_gauge_interval_seconds
                    ),
                    stopping.set,
                ),
            ]

        async with service_workers(
            app,
            "points",
            kafka,
            outbox_batch=settings.outbox_batch,
            workers=workers,
            relay_label=settings.consumer_group,
        ):
            yield

    return run_workers
