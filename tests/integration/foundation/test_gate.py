"""The chassis gate on the three real service apps and a real PostgreSQL: no caller can
flood them (rate limits, body size), guess voucher codes, or crash them with text
PostgreSQL cannot store; the key is checked before a byte of the body is read."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.alerts.app import build_app as alerts_app
from services.alerts.settings import AlertsSettings
from services.points.app import build_app as points_app
from services.points.settings import PointsSettings
from services.rewards.app import build_app as rewards_app
from services.rewards.db import vouchers
from services.rewards.domain.referrals import new_referral_code
from services.rewards.domain.vouchers import new_voucher_code
from services.rewards.settings import RewardsSettings
from shared.auth import Scope, create_key
from shared.db import create_engine
from shared.http import PROBLEM_JSON
from shared.http.gate import build_limits
from shared.settings import KafkaSettings, ServiceSettings
from tests.integration.foundation.serving import raw_exchange, served
from tests.support.infra import Databases, Infra

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


class Ticking:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Service:
    name: str
    app: FastAPI
    url: str
    host: str
    port: int
    keys: dict[str, str]  # scope (or "admin") -> token
    clock: Ticking

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)

    def bearer(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}


_BUILDERS: dict[str, tuple[Callable[..., FastAPI], type[ServiceSettings], list[str]]] = {
    "points": (points_app, PointsSettings, ["points:read", "points:redeem"]),
    "rewards": (rewards_app, RewardsSettings, ["rewards:read", "rewards:claim"]),
    "alerts": (alerts_app, AlertsSettings, ["alerts:read"]),
}


@asynccontextmanager
async def service(
    name: str, databases: Databases, infra: Infra, **limits: Any
) -> AsyncIterator[Service]:
    """The real service app on real HTTP, HTTP only, with `limits` overriding the defaults."""
    url = await databases.fresh(name)
    engine = create_engine(url, pool_size=1)
    build, settings_class, scopes = _BUILDERS[name]
    keys: dict[str, str] = {}
    async with engine.begin() as conn:
        keys["admin"] = (await create_key(conn, "admin", [Scope.ADMIN])).plaintext
        keys["other-admin"] = (await create_key(conn, "admin 2", [Scope.ADMIN])).plaintext
        for scope in scopes:
            keys[scope] = (await create_key(conn, scope, [scope])).plaintext
    await engine.dispose()
    settings = settings_class(database_url=url, run_workers=False, **limits)
    app = build(settings, kafka=KafkaSettings(bootstrap_servers=infra.bootstrap_servers))
    clock = Ticking()
    app.state.gate_limits = build_limits(settings, clock)
    async with served(app) as (host, port):
        yield Service(name, app, f"http://{host}:{port}", host, port, keys, clock)


def _body_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path with made-up parameters) of every operation that takes a JSON body."""
    routes = []
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            if "requestBody" in operation:
                routes.append((method.upper(), re.sub(r"\{[^}]+\}", "x-1", path)))
    return routes


def _problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.text[:300]}"
    )
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    if code is not None:
        assert body["code"] == code, body
    return body


# 3. the key before the body -----------------------------------------------------------

# Admin routes a read key may call: a merchant backtests its own history before it turns
# a lapse rule on (`alerts:read`, limited to its merchant).
READ_SCOPE_ADMIN = {("alerts", "POST", "/v1/admin/backtest")}


@pytest.mark.parametrize("name", ["points", "rewards", "alerts"])
async def test_a_bad_body_without_a_key_is_401_and_with_a_weak_key_403_on_every_body_route(
    name: str, databases: Databases, infra: Infra
) -> None:
    async with service(name, databases, infra) as svc, svc.client() as http:
        routes = _body_routes(svc.app)
        assert len(routes) >= 2, f"{name} has routes with a body"
        weak = next(token for scope, token in svc.keys.items() if scope.endswith(":read"))
        for method, path in routes:
            malformed = b'{"not json'
            json_type = {"content-type": "application/json"}
            anonymous = await http.request(method, path, content=malformed, headers=json_type)
            _problem(anonymous, 401, "api_key_missing")
            assert anonymous.headers["www-authenticate"].startswith("Bearer")
            wrong = await http.request(
                method,
                path,
                content=b'{"not json',
                headers={"content-type": "application/json", "Authorization": "Bearer lk_x_y"},
            )
            _problem(wrong, 401, "api_key_invalid")
            if not path.startswith("/v1/admin") or (name, method, path) in READ_SCOPE_ADMIN:
                continue
            forbidden = await http.request(
                method,
                path,
                content=b'{"not json',
                headers={"content-type": "application/json", "Authorization": f"Bearer {weak}"},
            )
            _problem(forbidden, 403, "scope_missing")


async def test_a_huge_body_without_a_key_is_refused_before_it_is_sent(
    databases: Databases, infra: Infra
) -> None:
    """The server answers 401 from the headers alone: the 100 MB body is never sent."""
    async with service("rewards", databases, infra) as svc:
        head = (
            f"POST /v1/vouchers/ABC/redeem HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {100 * MiB}\r\n\r\n"
        ).encode()
        status, headers, body = await raw_exchange(svc.host, svc.port, head)
        assert status == 401, body
        assert headers["content-type"] == PROBLEM_JSON
        assert json.loads(body)["code"] == "api_key_missing"


async def test_a_body_over_the_limit_is_413_from_content_length_or_as_it_streams(
    databases: Databases, infra: Infra
) -> None:
    limit = 64 * 1024
    async with service("points", databases, infra, max_body_bytes=limit) as svc:
        token = svc.keys["admin"]
        declared = (
            f"POST /v1/admin/adjustments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {limit + 1}\r\n\r\n"
        ).encode()
        status, _, body = await raw_exchange(svc.host, svc.port, declared)
        assert status == 413, body
        assert json.loads(body) | {"max_body_bytes": limit} == json.loads(body)
        assert json.loads(body)["code"] == "payload_too_large"

        # Chunked, no length: the server answers once the limit is passed, while the
        # client has sent only a little more than the limit and never ends the body.
        chunked = (
            f"POST /v1/admin/adjustments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        piece = b"x" * 16 * 1024
        chunks = [f"{len(piece):x}\r\n".encode() + piece + b"\r\n"] * 5  # 80 KiB, no last chunk
        status, headers, body = await raw_exchange(svc.host, svc.port, chunked, chunks)
        assert status == 413, body
        assert headers["content-type"] == PROBLEM_JSON

        async with svc.client() as http:  # just under the limit still reaches the route
            fine = await http.post(
                "/v1/admin/adjustments",
                headers=svc.bearer(),
                json={
                    "adjustment_id": "a-1",
                    "customer_id": "c-1",
                    "points": 5,
                    "reason": "x" * 400,
                },
            )
            assert fine.status_code in (200, 201), fine.text


# 1. rate limits -----------------------------------------------------------------------


async def test_reads_past_the_burst_are_429_with_retry_after_per_key_until_refilled(
    databases: Databases, infra: Infra
) -> None:
    limits = {"rate_read_per_second": 0.5, "rate_read_burst": 3}
    async with service("rewards", databases, infra, **limits) as svc, svc.client() as http:
        reader = {"Authorization": f"Bearer {svc.keys['rewards:read']}"}
        for _ in range(3):
            assert (await http.get("/v1/catalogue", headers=reader)).status_code == 200
        refused = await http.get("/v1/catalogue", headers=reader)
        body = _problem(refused, 429, "rate_limited")
        assert refused.headers["retry-after"] == "2", "one token refills in 2 s at 0.5/s"
        assert body["limit"] == "read"
        other = await http.get("/v1/catalogue", headers=svc.bearer())
        assert other.status_code == 200, "another key has its own bucket"
        svc.clock.now += 2.0
        assert (await http.get("/v1/catalogue", headers=reader)).status_code == 200
        _problem(await http.get("/v1/catalogue", headers=reader), 429, "rate_limited")


async def test_writes_and_admin_routes_have_their_own_limits(
    databases: Databases, infra: Infra
) -> None:
    limits = {"rate_admin_per_second": 0.1, "rate_admin_burst": 2}
    async with service("alerts", databases, infra, **limits) as svc, svc.client() as http:
        for _ in range(2):
            assert (await http.get("/v1/admin/thresholds", headers=svc.bearer())).status_code == 200
        refused = await http.get("/v1/admin/thresholds", headers=svc.bearer())
        assert _problem(refused, 429, "rate_limited")["limit"] == "admin"
        assert refused.headers["retry-after"] == "10"
        reads = await http.get("/v1/alerts", headers=svc.bearer())
        assert reads.status_code == 200, "the read limit is another bucket"


async def test_failed_authentications_per_address_are_429_but_a_trusted_key_passes(
    databases: Databases, infra: Infra
) -> None:
    limits = {"rate_auth_failure_per_second": 0.2, "rate_auth_failure_burst": 3}
    async with service("points", databases, infra, **limits) as svc, svc.client() as http:
        assert (await http.get("/v1/admin/liability", headers=svc.bearer())).status_code == 200
        bad = {"Authorization": "Bearer lk_0123456789abcdef_" + "x" * 43}
        for _ in range(3):
            _problem(await http.get("/v1/admin/liability", headers=bad), 401, "api_key_invalid")
        refused = await http.get("/v1/admin/liability", headers=bad)
        _problem(refused, 429, "too_many_failed_authentications")
        assert refused.headers["retry-after"] == "5"
        _problem(await http.get("/v1/admin/liability"), 429, "too_many_failed_authentications")
        trusted = await http.get("/v1/admin/liability", headers=svc.bearer())
        assert trusted.status_code == 200, "a key this instance already trusts is not locked out"
        svc.clock.now += 5.0
        _problem(await http.get("/v1/admin/liability", headers=bad), 401, "api_key_invalid")


# 2. guessing voucher codes ------------------------------------------------------------


async def _issue_voucher(url: str, code: str) -> None:
    engine = create_engine(url, pool_size=1)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(vouchers).values(
                voucher_id=uuid.uuid4(),
                code=code,
                customer_id="c-1",
                reward_code="coffee",
                origin="milestone",
                origin_ref=code,
                issued_at=now,
                expires_at=now + timedelta(days=30),
            )
        )
    await engine.dispose()


async def test_unknown_voucher_codes_lock_the_key_out_of_look_ups_and_redemptions(
    databases: Databases, infra: Infra
) -> None:
    limits = {
        "unknown_code_limit": 3,
        "unknown_code_window_seconds": 60,
        "unknown_code_lockout_seconds": 300,
    }
    async with service("rewards", databases, infra, **limits) as svc, svc.client() as http:
        real = new_voucher_code()
        await _issue_voucher(str(svc.app.state.settings.database_url), real)
        guesser = {"Authorization": f"Bearer {svc.keys['rewards:claim']}"}
        reader = {"Authorization": f"Bearer {svc.keys['rewards:read']}"}
        for _ in range(5):  # known codes never count
            assert (await http.get(f"/v1/vouchers/{real}", headers=reader)).status_code == 200
        _problem(
            await http.get(f"/v1/vouchers/{new_voucher_code()}", headers=reader),
            404,
            "voucher_not_found",
        )
        redeem = {"merchant_id": "m-1"}
        for guess in (new_voucher_code(), new_voucher_code()):
            answer = await http.post(f"/v1/vouchers/{guess}/redeem", json=redeem, headers=guesser)
            _problem(answer, 404, "voucher_not_found")
        _problem(await http.get(f"/v1/vouchers/{new_voucher_code()}", headers=reader), 404)
        # the claim key made 2 misses, the read key 2: neither is locked yet
        locked = await http.post(
            f"/v1/vouchers/{new_voucher_code()}/redeem", json=redeem, headers=guesser
        )
        _problem(locked, 404)
        refused = await http.post(f"/v1/vouchers/{real}/redeem", json=redeem, headers=guesser)
        body = _problem(refused, 429, "too_many_unknown_codes")
        assert refused.headers["retry-after"] == "300"
        assert body["retry_after_seconds"] == 300
        assert (await http.get(f"/v1/vouchers/{real}", headers=reader)).status_code == 200
        svc.clock.now += 61  # the read key's misses have left the window
        _problem(await http.get(f"/v1/vouchers/{new_voucher_code()}", headers=reader), 404)
        svc.clock.now += 240  # 301 s after the lockout began
        answer = await http.post(f"/v1/vouchers/{real}/redeem", json=redeem, headers=guesser)
        assert answer.status_code == 200, answer.text


# 4. NUL characters ----------------------------------------------------------------------

NUL = "before\u0000after"
_NUL_CASES = [
    ("alerts", "POST", f"/v1/alerts/{uuid.uuid4()}/ack", {"by": NUL, "note": "n"}, "body.by"),
    ("alerts", "POST", f"/v1/alerts/{uuid.uuid4()}/ack", {"by": "b", "note": NUL}, "body.note"),
    (
        "points",
        "POST",
        "/v1/admin/adjustments",
        {"adjustment_id": "a-1", "customer_id": "c-1", "points": 5, "reason": NUL},
        "body.reason",
    ),
    (
        "rewards",
        "PUT",
        "/v1/admin/catalogue/item-1",
        {
            "reward_code": "coffee",
            "title": NUL,
            "points_cost": 100,
            "claimable_from": "2026-01-01T00:00:00Z",
            "claimable_until": "2027-01-01T00:00:00Z",
            "voucher_valid_days": 30,
        },
        "body.title",
    ),
    (
        "rewards",
        "PUT",
        "/v1/admin/reward-definitions/coffee",
        {"title": NUL, "valid_days": 30},
        "body.title",
    ),
    ("rewards", "GET", "/v1/vouchers/AB%00CD", None, "path.code"),
    ("points", "GET", "/v1/admin/adjustments?cursor=x%00y", None, "query.cursor"),
]


@pytest.mark.parametrize(("name", "method", "path", "body", "field"), _NUL_CASES)
async def test_a_nul_character_anywhere_is_a_422_naming_the_field(
    name: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    field: str,
    databases: Databases,
    infra: Infra,
) -> None:
    async with service(name, databases, infra) as svc, svc.client() as http:
        answer = await http.request(method, path, json=body, headers=svc.bearer())
        problem = _problem(answer, 422, "validation_failed")
        assert {"field": field, "rule": "no_nul_character"}.items() <= problem["errors"][0].items()
        assert (await http.get("/healthz")).status_code == 200


@pytest.mark.parametrize("name", ["points", "rewards", "alerts"])
async def test_a_json_body_that_is_not_utf8_is_a_422_not_a_400(
    name: str, databases: Databases, infra: Infra
) -> None:
    async with service(name, databases, infra) as svc, svc.client() as http:
        method, path = _body_routes(svc.app)[0]
        answer = await http.request(
            method,
            path,
            content=b"\xff\xfe{\x00}",
            headers={**svc.bearer(), "content-type": "application/json"},
        )
        problem = _problem(answer, 422, "validation_failed")
        assert problem["errors"][0]["field"] == "body"
        assert problem["errors"][0]["rule"] == "json_invalid"


async def test_unknown_referral_codes_lock_the_key_out_too(
    databases: Databases, infra: Infra
) -> None:
    """A referral pays both sides: guessing someone's code is guessing for a reward."""
    limits = {"unknown_code_limit": 2, "unknown_code_lockout_seconds": 60}
    async with service("rewards", databases, infra, **limits) as svc, svc.client() as http:
        claim = {"Authorization": f"Bearer {svc.keys['rewards:claim']}"}
        route = "/v1/customers/new-customer/referral"
        for _ in range(2):
            guess = {"code": new_referral_code()}
            _problem(await http.post(route, json=guess, headers=claim), 404)
        refused = await http.post(route, json={"code": new_referral_code()}, headers=claim)
        _problem(refused, 429, "too_many_unknown_codes")
        assert refused.headers["retry-after"] == "60"


async def test_routes_without_a_key_are_limited_per_address(
    databases: Databases, infra: Infra
) -> None:
    """/readyz asks PostgreSQL and the broker: a flood of it is refused before it does."""
    limits = {"rate_anonymous_per_second": 0.5, "rate_anonymous_burst": 3}
    async with service("alerts", databases, infra, **limits) as svc, svc.client() as http:
        for probe in ("/readyz", "/healthz", "/openapi.json"):
            assert (await http.get(probe)).status_code in (200, 503), probe
        refused = await http.get("/readyz")
        assert _problem(refused, 429, "rate_limited")["limit"] == "anonymous"
        assert refused.headers["retry-after"] == "2"
        keyed = await http.get("/v1/alerts", headers=svc.bearer())
        assert keyed.status_code == 200, "a key's requests have their own buckets"
        svc.clock.now += 2.0
        assert (await http.get("/healthz")).status_code == 200


async def test_a_method_the_path_does_not_serve_is_405_allowing_every_method_it_does(
    databases: Databases, infra: Infra
) -> None:
    """GET and PUT of /v1/admin/thresholds are two routes; `Allow` must name both."""
    async with service("alerts", databases, infra) as svc, svc.client() as http:
        answer = await http.request("OPTIONS", "/v1/admin/thresholds", headers=svc.bearer())
        _problem(answer, 405, "method_not_allowed")
        assert answer.headers["allow"] == "GET, PUT"
        answer = await http.delete(f"/v1/alerts/{uuid.uuid4()}/ack", headers=svc.bearer())
        assert answer.headers["allow"] == "POST"
