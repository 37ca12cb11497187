"""The service chassis: one FastAPI factory every service builds its HTTP app from.

What every service gets, and nothing about points, rewards or alerts:
- the database engine, created in the lifespan (never at import time) and disposed
  at shutdown, at `app.state.engine`; the API-key authenticator at
  `app.state.authenticator`;
- `/healthz` (liveness: the process answers and none of its registered background
  workers crashed), `/readyz` (PostgreSQL and the broker answer within a short timeout
  and no worker crashed; the body lists each worker's state; otherwise 503 problem+json
  naming what failed), and `/metrics` (Prometheus text; refreshes the outbox backlog of
  a registered relay);
- problem+json for every error; OpenAPI at /docs.

Services add their routers and lifespan extras: async context managers entered
after the engine exists (start consumers, the outbox relay) and left before it is
disposed, in reverse order.

A crashed worker fails liveness as well as readiness, deliberately: nothing restarts it
in-process, so an instance whose consumer died would otherwise sit unready forever with
its partitions unconsumed; a failed liveness probe is what makes an orchestrator restart
it. Dependencies stay out of liveness (a database outage must not restart every
instance), and workers retry transient faults themselves, so a crash means a fault a
retry will not fix. A worker stopped by an orderly shutdown fails neither probe.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

import sqlalchemy as sa
from aiokafka.client import AIOKafkaClient
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.responses import Response

from shared.auth import ApiKeyAuthenticator, PrincipalCache
from shared.db import create_engine
from shared.errors import is_transient
from shared.http.gate import Gate, build_limits
from shared.http.openapi import install_problem_responses
from shared.http.problem import install_problem_handlers, problem_response
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings, ServiceSettings

log = logging.getLogger(__name__)

LifespanExtra = Callable[[FastAPI], AbstractAsyncContextManager[None]]

# FastAPI 0.16x asks OpenTelemetry's global providers on every request whether to run its
# native telemetry. Nothing here configures OpenTelemetry (only its API is installed, as
# FastAPI's dependency; the services export Prometheus metrics at /metrics), and asking
# cost ~4% of a balance read's CPU (py-spy under `python -m bench points`: the provider
# look-ups and their environment reads). Older FastAPI has neither the hook nor the option.
_NO_NATIVE_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


class WorkerReport(Protocol):
    """What the probes read of a service's background workers (see shared.http.workers)."""

    def states(self) -> Mapping[str, Mapping[str, str]]: ...

    def crashed(self) -> Mapping[str, str]: ...


def register_outbox_relay(app: FastAPI, relay: OutboxRelay) -> None:
    """Let `/metrics` report this relay's backlog (call from a lifespan extra)."""
    app.state.outbox_relay = relay


def register_workers(app: FastAPI, report: WorkerReport) -> None:
    """Let `/healthz` and `/readyz` report these workers (call from a lifespan extra)."""
    app.state.worker_report = report


def _workers(app: FastAPI) -> tuple[Mapping[str, Mapping[str, str]], Mapping[str, str]]:
    """Each worker's state and the crashed ones with their errors; none without workers."""
    report = getattr(app.state, "worker_report", None)
    if report is None:
        return {}, {}
    return report.states(), report.crashed()


def _crash_summary(crashed: Mapping[str, str]) -> str:
    return ", ".join(f"worker {name} crashed ({error})" for name, error in crashed.items())


async def _database_answers(app: FastAPI) -> None:
    async with app.state.engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))


async def _broker_answers(bootstrap_servers: str, patience: float) -> None:
    """Fetch cluster metadata from a bootstrap server: the broker answers Kafka requests."""
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        client_id="loyalty-readiness",
        request_timeout_ms=max(int(patience * 1000), 100),
    )
    try:
        await client.bootstrap()
    finally:
        await client.close()


async def _check(probe: Callable[[], Awaitable[None]], patience: float) -> str:
    try:
        async with asyncio.timeout(patience):
            await probe()
    except TimeoutError:
        return f"no answer within {patience:g}s"
    except Exception as exc:  # a readiness probe reports, it never raises
        return f"unreachable ({type(exc).__name__})"
    return "ok"


async def readiness(app: FastAPI, bootstrap_servers: str, patience: float) -> dict[str, str]:
    """Each dependency's state, checked concurrently: "ok" or why not."""
    database, broker = await asyncio.gather(
        _check(lambda: _database_answers(app), patience),
        _check(lambda: _broker_answers(bootstrap_servers, patience), patience),
    )
    return {"database": database, "broker": broker}


def _operations_router(bootstrap_servers: str, patience: float) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is up and no worker crashed", response_model=None)
    async def healthz(request: Request) -> Response | dict[str, str]:
        workers, crashed = _workers(request.app)
        if not crashed:
            return {"status": "ok"}
        return problem_response(
            503,
            "worker_crashed",
            detail=f"restart the process: {_crash_summary(crashed)}",
            instance="/healthz",
            workers=workers,
        )

    @router.get(
        "/readyz",
        summary="PostgreSQL and the broker answer and no worker crashed",
        response_model=None,
    )
    async def readyz(request: Request) -> Response | dict[str, Any]:
        checks = await readiness(request.app, bootstrap_servers, patience)
        workers, crashed = _workers(request.app)
        failing = [name for name, state in checks.items() if state != "ok"]
        if crashed:
            failing.append(_crash_summary(crashed))
        if not failing:
            return {"status": "ready", "checks": checks, "workers": workers}
        return problem_response(
            503,
            "not_ready",
            detail=f"not ready: {', '.join(failing)}",
            instance="/readyz",
            checks=checks,
            workers=workers,
        )

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        relay = getattr(request.app.state, "outbox_relay", None)
        if isinstance(relay, OutboxRelay):
            await _refresh_backlog(relay)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


async def _refresh_backlog(relay: OutboxRelay) -> None:
    """Update the backlog gauge; with the database down, keep the last value and still answer."""
    try:
        await asyncio.wait_for(relay.backlog(), 2.0)
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("metrics: outbox backlog not refreshed: %s", exc)


def _freeze_start_up_objects() -> None:
    """Move what start-up built (app, routes, schemas, table metadata: ~120k objects) out
    of the collector's reach. Otherwise every full collection walks them all, ~100 ms on
    a small machine, and that pause lands on whichever requests are in flight: it was the
    p99 of balance reads under load (`make bench`)."""
    gc.collect()
    gc.freeze()


def _lifespan(
    settings: ServiceSettings, extras: Sequence[LifespanExtra], auth_cache_ttl: float
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        app.state.engine = engine
        app.state.authenticator = ApiKeyAuthenticator(engine, PrincipalCache(ttl=auth_cache_ttl))
        try:
            async with AsyncExitStack() as stack:
                for extra in extras:
                    await stack.enter_async_context(extra(app))
                _freeze_start_up_objects()
                yield
        finally:
            await engine.dispose()

    return lifespan


def create_service_app(
    name: str,
    settings: ServiceSettings,
    *,
    kafka: KafkaSettings | None = None,
    routers: Sequence[APIRouter] = (),
    lifespan_extras: Sequence[LifespanExtra] = (),
    readiness_timeout: float = 2.0,
    auth_cache_ttl: float = 5.0,
    version: str = "0.1.0",
) -> FastAPI:
    """A FastAPI app for service `name` with the chassis endpoints, problem+json and `routers`.

    `auth_cache_ttl` bounds how long a revoked key may still pass in this process.
    """
    bootstrap_servers = (kafka or KafkaSettings()).bootstrap_servers
    app = FastAPI(
        title=f"loyalty {name}",
        version=version,
        lifespan=_lifespan(settings, lifespan_extras, auth_cache_ttl),
        docs_url="/docs",
        openapi_url="/openapi.json",
        **_NO_NATIVE_TELEMETRY,
    )
    app.state.service_name = name
    app.state.settings = settings
    app.state.gate_limits = build_limits(settings)
    app.state.lean_routes = True  # lean handlers answer their GETs (shared.http.lean)
    app.add_middleware(Gate, service=app)  # inside the crash net installed next
    install_problem_handlers(app)
    app.include_router(_operations_router(bootstrap_servers, readiness_timeout))
    for router in routers:
        app.include_router(router)
    install_problem_responses(app)
    return app
