"""`/healthz` and `/readyz` see the background workers `service_workers` runs: a crashed
worker makes both answer 503 naming it and its error; healthy workers and an orderly
shutdown keep both at 200. Real broker and PostgreSQL; the workers are plain coroutines."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.http import PROBLEM_JSON, create_service_app
from shared.http.app import LifespanExtra
from shared.http.workers import Worker, service_workers
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings, ServiceSettings
from tests.support.counting import wait_until
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


class Consumer:
    """Stands in for a Kafka consumer: runs until asked to stop, or dies when told to."""

    def __init__(self) -> None:
        self.woken = asyncio.Event()
        self.fault: BaseException | None = None

    async def run(self) -> None:
        await self.woken.wait()
        if self.fault is not None:
            raise self.fault

    def die(self, fault: BaseException) -> None:
        self.fault = fault
        self.woken.set()

    def worker(self, name: str) -> Worker:
        return Worker(name, self.run, self.woken.set)


def app_with(
    infra: Infra,
    db: str,
    service: str,
    workers: Callable[[OutboxRelay], list[Worker]],
    outer: LifespanExtra | None = None,
) -> FastAPI:
    """A chassis app whose lifespan runs `workers` through `service_workers`."""
    kafka = KafkaSettings(bootstrap_servers=infra.bootstrap_servers)

    @asynccontextmanager
    async def running(app: FastAPI) -> AsyncIterator[None]:
        async with service_workers(app, service, kafka, outbox_batch=10, workers=workers):
            yield

    return create_service_app(
        service,
        ServiceSettings(database_url=db, consumer_group=service),
        kafka=kafka,
        lifespan_extras=[*([outer] if outer else []), running],
        readiness_timeout=2.0,
    )


def http(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app), http(app) as client:
        yield client


def crashes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "shared.http.workers" and r.levelno >= logging.CRITICAL
    ]


async def test_a_crashed_consumer_fails_readiness_and_liveness_naming_it_and_its_error(
    infra: Infra, points_db: str, unique: str
) -> None:
    consumer, jobs = Consumer(), Consumer()
    app = app_with(
        infra,
        points_db,
        f"probe-{unique}",
        lambda relay: [consumer.worker("consumer"), jobs.worker("jobs")],
    )
    async with serving(app) as client:
        before = await client.get("/readyz")
        assert before.status_code == 200, f"not ready before any crash: {before.text}"
        consumer.die(RuntimeError("offsets lost\n[SQL: SELECT secret]"))

        async def unready() -> object:
            response = await client.get("/readyz")
            return True if response.status_code == 503 else response.text

        await wait_until(unready, timeout=10)
        ready, health = await client.get("/readyz"), await client.get("/healthz")
    assert ready.headers["content-type"] == PROBLEM_JSON and ready.json()["code"] == "not_ready"
    body = ready.json()
    assert "worker consumer crashed (RuntimeError: offsets lost)" in body["detail"], (
        f"the 503 does not name the dead consumer and its error: {body}"
    )
    assert body["workers"] == {
        "relay": {"state": "running"},
        "consumer": {"state": "crashed", "error": "RuntimeError: offsets lost"},
        "jobs": {"state": "running"},
        "dedupe-pruner": {"state": "running"},  # every service prunes processed_events
    }, "the body shows every worker's state, and only the dead one as crashed"
    assert body["checks"] == {"database": "ok", "broker": "ok"}, "dependencies still reported"
    assert "SELECT secret" not in ready.text, "only the error's first line reaches the probe"
    assert health.status_code == 503, "a dead consumer must make the orchestrator restart us"
    assert health.json()["code"] == "worker_crashed" and "consumer" in health.json()["detail"]


async def test_healthy_workers_keep_both_probes_at_200_and_show_as_running(
    infra: Infra, points_db: str, unique: str
) -> None:
    consumer = Consumer()
    app = app_with(infra, points_db, f"probe-{unique}", lambda relay: [consumer.worker("consumer")])
    async with serving(app) as client:
        await asyncio.sleep(0.3)  # give a wrongly wired worker time to end
        ready, health = await client.get("/readyz"), await client.get("/healthz")
    assert ready.status_code == 200, f"healthy workers made the service unready: {ready.text}"
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok"},
        "workers": {
            "relay": {"state": "running"},
            "consumer": {"state": "running"},
            "dedupe-pruner": {"state": "running"},
        },
    }
    assert health.status_code == 200 and health.json() == {"status": "ok"}


async def test_an_orderly_shutdown_stops_every_worker_without_flagging_a_crash(
    infra: Infra, points_db: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: dict[str, httpx.Response] = {}

    @asynccontextmanager
    async def probe_after_workers_stopped(app: FastAPI) -> AsyncIterator[None]:
        yield  # left after the workers' extra: every worker has been stopped by now
        async with http(app) as client:
            seen["ready"], seen["health"] = (
                await client.get("/readyz"),
                await client.get("/healthz"),
            )

    consumer, jobs = Consumer(), Consumer()
    app = app_with(
        infra,
        points_db,
        f"probe-{unique}",
        lambda relay: [consumer.worker("consumer"), jobs.worker("jobs")],
        outer=probe_after_workers_stopped,
    )
    with caplog.at_level(logging.CRITICAL, logger="shared.http.workers"):
        async with serving(app) as client:
            assert (await client.get("/readyz")).status_code == 200
    ready, health = seen["ready"], seen["health"]
    assert ready.status_code == 200, f"a stop on request was taken for a crash: {ready.text}"
    assert ready.json()["workers"] == {
        name: {"state": "stopped"} for name in ("relay", "consumer", "jobs", "dedupe-pruner")
    }
    assert health.status_code == 200, health.text
    assert crashes(caplog) == [], "an orderly shutdown logged a crash"


async def test_a_worker_that_returns_unasked_counts_as_crashed(
    infra: Infra, points_db: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def gives_up() -> None:
        return None  # e.g. a loop whose exit condition is wrong

    def workers(relay: OutboxRelay) -> list[Worker]:
        return [Worker("scanner", gives_up, lambda: None)]

    app = app_with(infra, points_db, f"probe-{unique}", workers)
    with caplog.at_level(logging.CRITICAL, logger="shared.http.workers"):
        async with serving(app) as client:

            async def unready() -> object:
                response = await client.get("/readyz")
                return True if response.status_code == 503 else response.text

            await wait_until(unready, timeout=10)
            body = (await client.get("/readyz")).json()
    assert body["workers"]["scanner"] == {
        "state": "crashed",
        "error": "returned without being asked to stop",
    }, f"a scanner that quietly ended is not reported: {body}"
    assert any("scanner" in message for message in crashes(caplog)), "the end was not logged"


async def test_two_workers_with_one_name_are_refused_before_anything_starts(
    infra: Infra, points_db: str, unique: str
) -> None:
    started: list[str] = []

    def runs(name: str) -> Callable[[], Coroutine[Any, Any, None]]:
        async def run() -> None:
            started.append(name)

        return run

    app = app_with(
        infra,
        points_db,
        f"probe-{unique}",
        lambda relay: [
            Worker("jobs", runs("a"), lambda: None),
            Worker("jobs", runs("b"), lambda: None),
        ],
    )
    with pytest.raises(ValueError, match="unique"):
        async with serving(app):
            pass
    await asyncio.sleep(0)
    assert started == [], "a worker started although the set was refused"
