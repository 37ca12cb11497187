"""The service chassis: problem+json errors, health, readiness, metrics, lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, Field

from services.alerts.scopes import ALERTS_READ
from shared.auth import ApiPrincipal
from shared.db import outbox
from shared.errors import Conflict
from shared.http import PROBLEM_JSON, create_service_app, register_outbox_relay, require
from shared.http.app import LifespanExtra
from shared.outbox import OutboxRelay
from shared.settings import KafkaSettings, ServiceSettings
from shared.telemetry import EVENTS_CONSUMED
from tests.support.infra import Infra, free_port

pytestmark = pytest.mark.integration

orders = APIRouter()


class Adjustment(BaseModel):
    customer_id: str
    points: int = Field(gt=0)


@orders.post("/adjustments")
async def adjust(adjustment: Adjustment) -> dict[str, int]:
    return {"points": adjustment.points}


@orders.get("/history")
async def history(limit: int = 50) -> dict[str, int]:
    return {"limit": limit}


@orders.post("/vouchers/{voucher_id}/use")
async def use_voucher(voucher_id: str) -> None:
    raise Conflict(
        f"voucher {voucher_id} was already used", code="voucher_used", voucher=voucher_id
    )


@orders.get("/crash")
async def crash() -> None:
    raise RuntimeError("password=hunter2 at 10.0.0.7")


@orders.get("/secured")
async def secured(principal: ApiPrincipal = Depends(require(ALERTS_READ))) -> str:
    return principal.key_id


def _app(
    database_url: str, bootstrap_servers: str, extras: Sequence[LifespanExtra] = ()
) -> FastAPI:
    return create_service_app(
        "chassis-test",
        ServiceSettings(database_url=database_url, consumer_group="chassis-test"),
        kafka=KafkaSettings(bootstrap_servers=bootstrap_servers),
        routers=[orders],
        lifespan_extras=extras,
        readiness_timeout=1.0,
    )


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            yield client


@pytest.fixture
async def client(infra: Infra, points_db: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(_app(points_db, infra.bootstrap_servers)) as running:
        yield running


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, f"expected {status}, got {response.text}"
    assert response.headers["content-type"] == PROBLEM_JSON, "error is not problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, f"expected code {code}, got {body}"
    assert body["type"] == f"urn:loyalty:problem:{code}" and body["status"] == status
    return body


def rules(body: dict[str, Any]) -> dict[str, str]:
    return {error["field"]: error["rule"] for error in body["errors"]}


async def test_a_validation_error_names_each_field_and_rule(client: httpx.AsyncClient) -> None:
    response = await client.post("/adjustments", json={"points": 0})
    body = problem(response, 422, "validation_failed")
    assert rules(body) == {"body.points": "greater_than", "body.customer_id": "missing"}
    points = next(e for e in body["errors"] if e["field"] == "body.points")
    assert points["params"] == {"gt": 0} and points["message"], "the rule's limit is not given"
    assert "body.points" in body["detail"], "the detail does not name the failing field"


async def test_malformed_json_and_bad_query_parameters_are_named(
    client: httpx.AsyncClient,
) -> None:
    broken = await client.post(
        "/adjustments", content=b'{"points": ', headers={"content-type": "application/json"}
    )
    assert set(rules(problem(broken, 422, "validation_failed")).values()) == {"json_invalid"}
    bad_limit = await client.get("/history", params={"limit": "many"})
    assert rules(problem(bad_limit, 422, "validation_failed")) == {"query.limit": "int_parsing"}


async def test_a_domain_error_keeps_its_status_code_and_fields(client: httpx.AsyncClient) -> None:
    body = problem(await client.post("/vouchers/V-7/use"), 409, "voucher_used")
    assert body["detail"] == "voucher V-7 was already used" and body["voucher"] == "V-7"
    assert body["instance"] == "/vouchers/V-7/use"


async def test_unknown_routes_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    problem(await client.get("/no/such/route"), 404, "not_found")
    wrong_method = await client.delete("/history")
    problem(wrong_method, 405, "method_not_allowed")
    assert "GET" in wrong_method.headers["allow"], "a 405 must say which methods are allowed"


async def test_a_crash_is_an_opaque_logged_500(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="shared.http.problem"):
        response = await client.get("/crash")
    body = problem(response, 500, "internal_error")
    assert "hunter2" not in response.text and "RuntimeError" not in response.text, (
        "internals leaked to the client"
    )
    logged = [r for r in caplog.records if body["incident"] in r.getMessage()]
    assert logged and logged[0].exc_info, "the crash was not logged with its incident id"


async def test_an_unauthenticated_secured_route_is_a_401_problem(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/secured")
    problem(response, 401, "api_key_missing")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_health_and_readiness_when_everything_is_up(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, f"not ready with PostgreSQL and the broker up: {ready.text}"
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


async def test_not_ready_when_the_database_is_unreachable(infra: Infra) -> None:
    dead_db = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/points"
    async with serving(_app(dead_db, infra.bootstrap_servers)) as client:
        assert (await client.get("/healthz")).status_code == 200, "liveness must not need the DB"
        body = problem(await client.get("/readyz"), 503, "not_ready")
    assert body["checks"]["broker"] == "ok" and body["checks"]["database"] != "ok", body
    assert "database" in body["detail"], "the 503 does not say what is missing"


async def test_not_ready_when_the_broker_is_unreachable(points_db: str) -> None:
    async with serving(_app(points_db, f"127.0.0.1:{free_port()}")) as client:
        body = problem(await client.get("/readyz"), 503, "not_ready")
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"] != "ok", body


async def test_metrics_expose_consumption_and_the_outbox_backlog(
    infra: Infra, points_db: str, unique: str
) -> None:
    service = f"chassis-{unique}"

    @asynccontextmanager
    async def relay(app: FastAPI) -> AsyncIterator[None]:
        register_outbox_relay(app, OutboxRelay(app.state.engine, object(), service=service))
        yield

    app = _app(points_db, infra.bootstrap_servers, [relay])
    async with serving(app) as client:
        async with app.state.engine.begin() as conn:
            rows = [{"topic": "t", "key": None, "value": b"{}"} for _ in range(2)]
            await conn.execute(sa.insert(outbox), rows)
        EVENTS_CONSUMED.labels(f"g-{unique}").inc(3)
        response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/")
    text = response.text
    assert f'loyalty_events_consumed_total{{group="g-{unique}"}} 3.0' in text, (
        "events consumed are not exposed"
    )
    assert f'loyalty_outbox_backlog{{service="{service}"}} 2.0' in text, "backlog not refreshed"


async def test_the_engine_lives_only_within_the_lifespan(infra: Infra, points_db: str) -> None:
    order: list[str] = []

    def extra(name: str) -> LifespanExtra:
        @asynccontextmanager
        async def step(app: FastAPI) -> AsyncIterator[None]:
            assert app.state.engine is not None, "extras must see the engine"
            order.append(f"start {name}")
            yield
            order.append(f"stop {name}")

        return step

    app = _app(points_db, infra.bootstrap_servers, [extra("consumer"), extra("relay")])
    assert not hasattr(app.state, "engine"), "the engine was created before the app started"
    async with serving(app) as client:
        assert (await client.get("/readyz")).status_code == 200
    assert order == ["start consumer", "start relay", "stop relay", "stop consumer"]
    assert app.state.engine.pool.checkedout() == 0, "connections left open after shutdown"


async def test_openapi_documents_routes_and_the_api_key_scheme(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200, "no interactive docs at /docs"
    spec = (await client.get("/openapi.json")).json()
    assert "/adjustments" in spec["paths"] and "/readyz" in spec["paths"]
    scheme = spec["components"]["securitySchemes"]["ApiKey"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}, scheme
