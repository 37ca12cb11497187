"""The points service as one process: HTTP API, consumer, outbox relay and due-time jobs.

`build_app` wires the chassis app with the partner and admin routers. With
`settings.run_workers` (the default) its lifespan also runs, as asyncio tasks:
- the consumers of `pos.purchases` and `loyalty.rewards` (exactly once, see shared.kafka):
  `settings.consumers` members of the group, so that one computes while another waits
  for PostgreSQL;
- the outbox relay publishing to `loyalty.points`, woken after every committed batch;
- the periodic jobs of `jobs`: the due-time work (settlement, expiry, yearly tier review)
  every `jobs_interval_seconds`, and the `loyalty_points_outstanding` gauge recounted every
  `outstanding_gauge_interval_seconds`.
On shutdown (SIGTERM through uvicorn) each consumer finishes and commits its batch in
flight, then the jobs and the relay stop, then the engine is disposed by the chassis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.points.adjustments.endpoints import router as adjustments_router
from services.points.audit.endpoints import router as audit_router
from services.points.handlers import points_registry
from services.points.jobs import points_jobs
from services.points.ledger.endpoints import router as ledger_router
from services.points.liability.endpoints import router as liability_router
from services.points.redemptions.endpoints import router as redemptions_router
from services.points.returns.endpoints import router as returns_router
from services.points.rules.endpoints import router as rules_router
from services.points.rules.service import RuleBookCache
from services.points.settings import PointsSettings
from shared.db import create_read_pool
from shared.http.app import create_service_app
from shared.http.workers import Worker, service_workers
from shared.kafka.membership import GroupMembership
from shared.kafka.runtime import EventConsumer, utc_now
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings


def build_app(
    settings: PointsSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The points service app; `clock` (default: the real UTC clock) drives every rule."""
    settings = settings or PointsSettings()  # the environment supplies the URL
    kafka = kafka or KafkaSettings()
    app = create_service_app(
        "points",
        settings,
        kafka=kafka,
        routers=ROUTERS,
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

        def workers(relay: OutboxRelay) -> list[Worker]:
            consumers = build_consumers(
                settings, engine, kafka.bootstrap_servers, clock, after_commit=relay.wakeup.set
            )
            jobs = points_jobs(engine, clock, settings)
            return [
                *(
                    Worker(_member_name(i, len(consumers)), c.run, c.request_stop)
                    for i, c in enumerate(consumers)
                ),
                *(Worker(job.name, job.run, job.stop) for job in jobs),
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


def build_consumers(
    settings: PointsSettings,
    engine: AsyncEngine,
    bootstrap_servers: str,
    clock: Callable[[], datetime] = utc_now,
    *,
    after_commit: Callable[[], None] | None = None,
) -> list[EventConsumer]:
    """The points consumers (purchases and returns, and the requests of rewards): the
    process's `settings.consumers` members of the group (see the setting).

    `after_commit` runs after each committed batch (the app wakes its outbox relay).
    """
    membership = GroupMembership.from_environment()
    return [
        EventConsumer(
            group_id=settings.consumer_group,
            topics=[settings.purchases_topic, settings.rewards_topic],
            bootstrap_servers=bootstrap_servers,
            engine=engine,
            registry=points_registry(points_topic=settings.points_topic),
            clock=clock,
            max_batch=settings.max_batch,
            after_commit=after_commit,
            membership=membership.for_member(member),
        )
        for member in range(settings.consumers)
    ]


def _member_name(index: int, members: int) -> str:
    """The worker's name in health and logs: `consumer`, or `consumer 2/2`."""
    return "consumer" if members == 1 else f"consumer {index + 1}/{members}"


# Partner routes first, then admin, in the order the README's route table lists them.
ROUTERS = [
    ledger_router,
    redemptions_router,
    rules_router,
    adjustments_router,
    liability_router,
    returns_router,
    audit_router,
]
