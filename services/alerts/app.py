"""Wiring of the alerts service: the HTTP app and, in its lifespan, the background workers.

Workers (unless `run_workers` is off): the exactly-once consumer of `pos.purchases`,
`loyalty.points` and `loyalty.rewards`; the outbox relay to `loyalty.alerts` (woken after each
consumed batch); the due-time scanner; the periodic model refit, segment refresh and recount
of open alerts (the `loyalty_alerts_open` gauge); the rescheduling of lapse checks after a
refit (see `model_jobs`). Every one is safe with several instances (consumer groups, SKIP
LOCKED, advisory locks).

Shutdown (SIGTERM through uvicorn, then the lifespan): the consumer finishes and commits its
batch and leaves the group, the scanner and jobs stop between rounds, and the relay stops last
so that what they queued is still published; then the producer and the engine close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.alerts.api import admin_router, alerts_router
from services.alerts.clock import AlertsClock, clock_for
from services.alerts.handlers import alerts_registry
from services.alerts.metrics import refresh_open_alerts_gauge
from services.alerts.model_jobs import (
    PeriodicJob,
    refit_model,
    refresh_segments,
    reschedule_pending_checks,
)
from services.alerts.scanner import AlertScanner
from services.alerts.settings import AlertsSettings
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
        routers=[alerts_router, admin_router],
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
            scanner = AlertScanner(
                engine,
                clock,
                batch_size=settings.scan_batch,
                alerts_topic=settings.alerts_topic,
                interval_seconds=settings.scan_interval_seconds,
            )
            rescheduler = PeriodicJob(
                "check rescheduling",
                lambda: reschedule_pending_checks(engine),
                settings.reschedule_poll_seconds,
            )
            jobs = [
                rescheduler,
                PeriodicJob(
                    "model refit",
                    lambda: refit_model(engine, clock),
                    settings.model_refit_interval_seconds,
                ),
                PeriodicJob(
                    "segment refresh",
                    lambda: refresh_segments(engine, clock),
                    settings.segment_refresh_interval_seconds,
                ),
                PeriodicJob(
                    "open alerts gauge",
                    lambda: refresh_open_alerts_gauge(engine),
                    settings.open_alerts_gauge_interval_seconds,
                ),
            ]
            app.state.alerts_scanner = scanner
            app.state.alerts_rescheduler = rescheduler  # a refit over HTTP wakes it
            return [
                Worker("consumer", consumer.run, consumer.request_stop),
                Worker("scanner", scanner.run, scanner.stop),
                *(Worker(job.name.replace(" ", "-"), job.run, job.stop) for job in jobs),
            ]

        async with service_workers(
            app, "alerts", kafka, outbox_batch=settings.outbox_batch, workers=workers
        ):
            yield

    return run_workers
