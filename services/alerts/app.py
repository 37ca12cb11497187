"""Wiring of the alerts service: the HTTP app and, in its lifespan, the background workers.

Workers (unless `run_workers` is off): the exactly-once consumer of `pos.purchases`,
`loyalty.points` and `loyalty.rewards`; the outbox relay to `loyalty.alerts` (woken after each
consumed batch); and the periodic jobs of `jobs.py` (the due-time scanner, the model refit,
segment refresh, recount of open alerts, the rescheduling of lapse checks after a refit).
Every one is safe with several instances (consumer groups, SKIP LOCKED, advisory locks).

Shutdown (SIGTERM through uvicorn, then the lifespan): the consumer finishes and commits its
batch and leaves the group, the scanner and jobs stop between rounds, and the relay stops last
so that what they queued is still published; then the producer and the engine close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.alerts.backtest.endpoints import router as backtest_router
from services.alerts.clock.service import AlertsClock, clock_for
from services.alerts.customers.endpoints import router as customers_router
from services.alerts.handlers import alerts_registry
from services.alerts.integrity.endpoints import router as integrity_router
from services.alerts.jobs import alerts_jobs
from services.alerts.lapse.endpoints import router as lapse_router
from services.alerts.model.endpoints import router as model_router
from services.alerts.settings import AlertsSettings
from services.alerts.thresholds.endpoints import router as thresholds_router
from shared.http import create_service_app
from shared.http.workers import Worker, service_workers
from shared.kafka.runtime import EventConsumer
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings


def build_app(
    settings: AlertsSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    clock: AlertsClock | None = None,
) -> FastAPI:
    """The alerts service. `clock` overrides `settings.clock` (tests pin or replay time)."""
    settings = settings or AlertsSettings()  # the database URL comes from the environment
    kafka = kafka or KafkaSettings()
    chosen_clock = clock or clock_for(settings.clock)
    extras = [_workers(settings, kafka, chosen_clock)] if settings.run_workers else []
    app = create_service_app(
        "alerts",
        settings,
        kafka=kafka,
        routers=[
            lapse_router,
            customers_router,
            thresholds_router,
            model_router,
            backtest_router,
            integrity_router,
        ],
        lifespan_extras=extras,
    )
    app.state.alerts_clock = chosen_clock
    return app


def _workers(settings: AlertsSettings, kafka: KafkaSettings, clock: AlertsClock) -> Any:
    @asynccontextmanager
    async def run_workers(app: FastAPI) -> AsyncIterator[None]:
        engine = app.state.engine

        def workers(relay: OutboxRelay) -> list[Worker]:
            consumer = EventConsumer(
                group_id=settings.consumer_group,
                topics=settings.consumed_topics,
                bootstrap_servers=kafka.bootstrap_servers,
                engine=engine,
                registry=alerts_registry(alerts_topic=settings.alerts_topic),
                max_batch=settings.max_batch,
                after_commit=relay.wakeup.set,
            )
            jobs = alerts_jobs(settings, engine, clock)
            app.state.alerts_jobs = jobs  # a refit over HTTP wakes the rescheduler
            return [
                Worker("consumer", consumer.run, consumer.request_stop),
                *(Worker(job.name, job.run, job.stop) for job in jobs.all()),
            ]

        async with service_workers(
            app, "alerts", kafka, outbox_batch=settings.outbox_batch, workers=workers
        ):
            yield

    return run_workers
