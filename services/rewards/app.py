"""Wiring: the rewards HTTP app, its consumer, outbox relay and due-time jobs.

`build_app` follows the convention every service shares: the lifespan starts the
consumer (loyalty.points, ops.service-incidents and pos.purchases), the outbox relay and
the periodic jobs (`jobs.py`) as asyncio tasks, and stops them in reverse on shutdown (the
consumer finishes and commits its batch first). `settings.run_workers = False` builds the
app for HTTP only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from services.rewards.catalogue import endpoints as catalogue
from services.rewards.claims import endpoints as claims
from services.rewards.guarantee_claims import endpoints as guarantee_claims
from services.rewards.handlers import rewards_registry
from services.rewards.jobs import due_jobs
from services.rewards.milestones import endpoints as milestones
from services.rewards.policies import endpoints as policies
from services.rewards.referrals import endpoints as referrals
from services.rewards.reports import endpoints as reports
from services.rewards.reviews import endpoints as reviews
from services.rewards.settings import RewardsSettings, RewardsTopics
from services.rewards.vouchers import endpoints as vouchers
from shared.http.app import create_service_app
from shared.http.workers import Worker, service_workers
from shared.kafka.runtime import EventConsumer, utc_now
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings

# Partner routes first, then admin routes, in the order the OpenAPI lists them.
ROUTERS = [
    catalogue.router,
    claims.router,
    vouchers.router,
    guarantee_claims.router,
    referrals.router,
    policies.router,
    catalogue.admin_router,
    milestones.router,
    reviews.router,
    guarantee_claims.admin_router,
    reports.router,
    referrals.admin_router,
    vouchers.admin_router,
]


def _workers(
    settings: RewardsSettings, kafka: KafkaSettings, clock: Callable[[], datetime]
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def workers(app: FastAPI) -> AsyncIterator[None]:
        topics: RewardsTopics = app.state.topics

        def build(relay: OutboxRelay) -> list[Worker]:
            consumer = EventConsumer(
                group_id=settings.consumer_group,
                topics=[settings.points_topic, settings.incidents_topic, settings.purchases_topic],
                bootstrap_servers=kafka.bootstrap_servers,
                engine=app.state.engine,
                registry=rewards_registry(topics, settings.default_voucher_days),
                clock=clock,
                max_batch=settings.max_batch,
                after_commit=relay.wakeup.set,
                consumer_options={"fetch_max_wait_ms": settings.fetch_max_wait_ms},
            )
            jobs = due_jobs(
                app.state.engine,
                topics,
                clock,
                settings.jobs_interval_seconds,
                settings.jobs_batch,
                after_work=relay.wakeup.set,
                claim_timeout=settings.claim_timeout,
            )
            app.state.jobs = jobs
            return [
                Worker("consumer", consumer.run, consumer.request_stop),
                *(Worker(job.name, job.run, job.stop) for job in jobs),
            ]

        async with service_workers(
            app, "rewards", kafka, outbox_batch=settings.outbox_batch, workers=build
        ):
            yield

    return workers


def build_app(
    settings: RewardsSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The rewards service: partner and admin routes, and (unless disabled) its workers."""
    settings = settings or RewardsSettings()
    kafka = kafka or KafkaSettings()
    now = clock or utc_now
    extras = [_workers(settings, kafka, now)] if settings.run_workers else []
    app = create_service_app(
        "rewards",
        settings,
        kafka=kafka,
        routers=ROUTERS,
        lifespan_extras=extras,
    )
    app.state.clock = now
    app.state.topics = RewardsTopics(rewards=settings.rewards_topic, ops=settings.ops_topic)
    return app
