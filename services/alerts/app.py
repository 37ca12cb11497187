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

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer
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
from shared.http import create_service_app, register_outbox_relay
from shared.kafka.runtime import EventConsumer
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)


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


def _report_crash(name: str) -> Any:
    def done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical("alerts worker %s stopped: %r", name, task.exception())

    return done


def _start(name: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    task = asyncio.create_task(work, name=f"alerts-{name}")
    task.add_done_callback(_report_crash(name))
    return task


def _workers(settings: AlertsSettings, kafka: KafkaSettings, clock: AlertsClock) -> Any:
    @asynccontextmanager
    async def run_workers(app: FastAPI) -> AsyncIterator[None]:
        engine = app.state.engine
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id=f"{kafka.client_id_prefix}-alerts-relay",
            linger_ms=5,
        )
        await producer.start()
        relay = OutboxRelay(engine, producer, service="alerts", batch_size=settings.outbox_batch)
        register_outbox_relay(app, relay)
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
        relay_task = _start("relay", relay.run())
        workers = [
            _start("consumer", consumer.run()),
            _start("scanner", scanner.run()),
            *(_start(job.name.replace(" ", "-"), job.run()) for job in jobs),
        ]
        try:
            yield
        finally:
            consumer.request_stop()
            scanner.stop()
            for job in jobs:
                job.stop()
            await asyncio.gather(*workers, return_exceptions=True)
            relay.stop()
            await asyncio.gather(relay_task, return_exceptions=True)
            await producer.stop()

    return run_workers
