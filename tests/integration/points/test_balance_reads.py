"""The balance read answered by the gate (`shared.http.lean`) is, byte for byte, what the
FastAPI route answers, for every kind of request a partner app can send; and a database
outage is a 503 on both paths."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.points.ledger import endpoints
from services.points.scopes import POINTS_READ, POINTS_REDEEM
from shared.auth import ApiPrincipal, PrincipalCache
from shared.http.lean import lean_handler
from tests.integration.points.api_client import PointsApi, points_api, problem
from tests.integration.points.helpers import NOW, days_ago, points_stack, purchase
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
def lean_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(customer id, "answered" | "declined" | "raised") of every call of the balance's lean
    handler; set before the app serves its first request (the gate reads its route table
    then)."""
    calls: list[tuple[str, str]] = []
    handler = lean_handler(endpoints.get_balance)
    assert handler is endpoints.lean_balance, "the balance route has its lean handler"

    async def counted(
        app: FastAPI, path: Mapping[str, str], principal: ApiPrincipal | None
    ) -> bytes | None:
        try:
            body = await handler(app, path, principal)
        except Exception:
            calls.append((path["customer_id"], "raised"))
            raise
        calls.append((path["customer_id"], "declined" if body is None else "answered"))
        return body

    monkeypatch.setattr(endpoints.get_balance, "__lean_handler__", counted)
    return calls


@pytest.fixture
async def api(infra: Infra, points_db: str) -> AsyncIterator[PointsApi]:
    async with points_api(infra, points_db) as running:
        yield running


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    kept = ("content-type", "content-length", "www-authenticate", "retry-after")
    return (
        response.status_code,
        {k: v for k, v in response.headers.items() if k in kept},
        (response.content),
    )


async def test_the_lean_balance_answers_byte_for_byte_as_the_route_does(
    infra: Infra,
    points_db: str,
    unique: str,
    lean_calls: list[tuple[str, str]],
    api: PointsApi,
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.consumer():
            await publish(
                infra.bootstrap_servers,
                stack.inbound,
                [
                    purchase("ann", "o-1", "100.00", days_ago(1)),
                    purchase("ann", "o-2", "40.50", days_ago(350), merchant="books"),
                    purchase("bo.b:x@y-1", "o-3", "12.34", days_ago(20)),
                ],
            )
            await stack.wait_handled(3)
    api.clock.pinned = NOW.replace(microsecond=123456)
    reader = await api.key(POINTS_READ)
    bound = await api.key(POINTS_READ, merchant="books")  # reads the coalition balance
    redeemer = await api.key(POINTS_REDEEM)
    cases: list[tuple[str, dict[str, str]]] = [
        ("/v1/customers/ann/balance", reader),
        ("/v1/customers/ann/balance", bound),
        ("/v1/customers/bo.b:x@y-1/balance", reader),
        ("/v1/customers/ann/balance?unknown=1", reader),
        ("/v1/customers/nobody/balance", reader),  # 404
        ("/v1/customers/" + "x" * 65 + "/balance", reader),  # 422: too long
        ("/v1/customers/ann%20x/balance", reader),  # 422: pattern
        ("/v1/customers/%C3%A9/balance", reader),  # 422: not ASCII
        ("/v1/customers/ann/balance", {}),  # 401
        ("/v1/customers/ann/balance", {"Authorization": "Bearer lk_nope"}),  # 401
        ("/v1/customers/ann/balance", redeemer),  # 403: lacks points:read
    ]
    lean = [_answer(await api.client.get(path, headers=headers)) for path, headers in cases]
    assert lean_calls == [
        ("ann", "answered"),
        ("ann", "answered"),
        ("bo.b:x@y-1", "answered"),
        ("ann", "answered"),
        ("nobody", "raised"),  # CustomerNotFound
        ("x" * 65, "declined"),
        ("ann x", "declined"),
        ("é", "declined"),
    ], "the gate answers valid reads itself and leaves the rest to the route"
    api.app.state.lean_routes = False
    framework = [_answer(await api.client.get(path, headers=headers)) for path, headers in cases]
    assert len(lean_calls) == 8, "with lean routes off the route answers every request"
    assert lean == framework
    statuses = [status for status, _, _ in lean]
    assert statuses == [200, 200, 200, 200, 404, 422, 422, 422, 401, 401, 403]
    assert lean[0][1]["content-type"] == "application/json"
    body: dict[str, Any] = httpx.Response(200, content=lean[0][2]).json()
    assert (body["available"], body["pending"], body["expiring_soon"]) == (40, 100, 40)
    assert body["as_of"] == NOW.strftime("%Y-%m-%dT%H:%M:%S.123456Z")


async def test_reads_are_rate_limited_per_key_on_the_lean_path(
    infra: Infra, points_db: str, lean_calls: list[tuple[str, str]]
) -> None:
    async with points_api(infra, points_db, rate_read_per_second=0.01, rate_read_burst=2) as api:
        reader = await api.key(POINTS_READ)
        for _ in range(2):
            problem(
                await api.client.get("/v1/customers/kim/balance", headers=reader),
                404,
                "customer_not_found",
            )
        refused = await api.client.get("/v1/customers/kim/balance", headers=reader)
        assert problem(refused, 429, "rate_limited")["limit"] == "read"
        assert lean_calls == [("kim", "raised")] * 2, "the refused read never ran"


async def test_a_database_outage_is_a_503_on_both_paths_and_at_the_gate(
    infra: Infra, points_db: str, lean_calls: list[tuple[str, str]], api: PointsApi
) -> None:
    if infra.embedded is None:
        pytest.fail("this test stops PostgreSQL: it needs the embedded pair")
    api.app.state.authenticator.cache = PrincipalCache(ttl=600)  # the test app caches none
    reader = await api.key(POINTS_READ)  # trusted by this instance after its first read
    unchecked = await api.key(POINTS_READ)  # never seen: the gate must ask the database
    unknown = "/v1/customers/kim/balance"
    problem(await api.client.get(unknown, headers=reader), 404, "customer_not_found")
    await asyncio.to_thread(infra.embedded.stop_postgres)
    try:
        for lean in (True, False):
            api.app.state.lean_routes = lean
            problem(await api.client.get(unknown, headers=reader), 503, "database_unavailable")
            refused = await api.client.get(unknown, headers=unchecked)
            problem(refused, 503, "database_unavailable")
    finally:
        await asyncio.to_thread(infra.embedded.start_postgres)
    assert lean_calls == [("kim", "raised")] * 2, "the first read and the outage's ran lean"
    api.app.state.lean_routes = True
    for headers in (reader, unchecked):
        problem(await api.client.get(unknown, headers=headers), 404, "customer_not_found")


async def test_a_crash_on_the_lean_path_is_a_logged_opaque_500(
    infra: Infra, points_db: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def crashing(
        app: FastAPI, path: Mapping[str, str], principal: ApiPrincipal | None
    ) -> bytes | None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(endpoints.get_balance, "__lean_handler__", crashing)
    async with points_api(infra, points_db) as api:
        reader = await api.key(POINTS_READ)
        answer = await api.client.get("/v1/customers/kim/balance", headers=reader)
        body = problem(answer, 500, "internal_error")
        assert "secret" not in answer.text and body["incident"] in caplog.text
        api.app.state.lean_routes = False
        problem(
            await api.client.get("/v1/customers/kim/balance", headers=reader),
            404,
            "customer_not_found",
        )
