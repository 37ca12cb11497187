"""(g) API keys at the HTTP edge and from the operator's CLI, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from services.points.scopes import POINTS_READ, POINTS_REDEEM
from services.rewards.scopes import REWARDS_CLAIM
from shared.auth import ApiPrincipal, Scope, authenticate, create_key, revoke_key
from shared.db import create_engine
from shared.errors import Unauthorized
from shared.http import PROBLEM_JSON, create_service_app, ensure_merchant, require
from shared.settings import KafkaSettings, ServiceSettings
from tests.support.infra import Infra
from tooling.cli import main

pytestmark = pytest.mark.integration

AUTH_CACHE_TTL = 0.3

partner_api = APIRouter()


class Redemption(BaseModel):
    customer_id: str
    points: int = Field(gt=0)


@partner_api.get("/merchants/{merchant_id}/balances/{customer_id}")
async def balance(
    merchant_id: str,
    customer_id: str,
    principal: ApiPrincipal = Depends(require(POINTS_READ)),
) -> dict[str, str]:
    ensure_merchant(principal, merchant_id)
    return {"merchant_id": merchant_id, "customer_id": customer_id, "key_id": principal.key_id}


@partner_api.post("/merchants/{merchant_id}/redemptions")
async def redeem(
    merchant_id: str,
    redemption: Redemption,
    principal: ApiPrincipal = Depends(require(POINTS_REDEEM)),
) -> dict[str, Any]:
    ensure_merchant(principal, merchant_id)
    return {"merchant_id": merchant_id, "points": redemption.points}


@dataclass
class PartnerApi:
    client: httpx.AsyncClient
    engine: AsyncEngine

    async def issue(self, *scopes: Scope, merchant: str | None = None) -> str:
        async with self.engine.begin() as conn:
            return (await create_key(conn, "test partner", scopes, merchant)).plaintext

    async def revoke(self, plaintext: str) -> None:
        async with self.engine.begin() as conn:
            await revoke_key(conn, plaintext.split("_")[1])

    async def balance(self, merchant: str, key: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return await self.client.get(f"/merchants/{merchant}/balances/c-1", headers=headers)

    async def redeem(self, merchant: str, key: str) -> httpx.Response:
        return await self.client.post(
            f"/merchants/{merchant}/redemptions",
            json={"customer_id": "c-1", "points": 100},
            headers={"Authorization": f"Bearer {key}"},
        )


@pytest.fixture
async def api(infra: Infra, points_db: str) -> AsyncIterator[PartnerApi]:
    app = create_service_app(
        "points-test",
        ServiceSettings(database_url=points_db, consumer_group="api-keys-test"),
        kafka=KafkaSettings(bootstrap_servers=infra.bootstrap_servers),
        routers=[partner_api],
        auth_cache_ttl=AUTH_CACHE_TTL,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://points") as client:
            yield PartnerApi(client, app.state.engine)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (
        f"expected {status} {code}, got {response.status_code}: {response.text}"
    )
    assert response.headers["content-type"] == PROBLEM_JSON, "errors must be problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, f"expected error code {code}, got {body.get('code')}"
    assert body["status"] == status and body["title"], "problem document is incomplete"
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer"), "401 lacks a challenge"
    return body


async def test_a_request_without_a_key_is_refused_with_401(api: PartnerApi) -> None:
    assert_problem(await api.balance("m-1", None), 401, "api_key_missing")
    basic = await api.client.get(
        "/merchants/m-1/balances/c-1", headers={"Authorization": "Basic dXNlcjpwYXNz"}
    )
    assert_problem(basic, 401, "api_key_missing")


async def test_a_wrong_key_is_refused_with_401(api: PartnerApi) -> None:
    genuine = await api.issue(POINTS_READ)
    wrong_secret = genuine[:-4] + ("AAAA" if not genuine.endswith("AAAA") else "BBBB")
    unknown_id = "lk_" + "0" * 16 + "_" + genuine.split("_", 2)[2]
    for key in (wrong_secret, unknown_id, "not-a-key", genuine + "x"):
        assert_problem(await api.balance("m-1", key), 401, "api_key_invalid")
    assert (await api.balance("m-1", genuine)).status_code == 200, "the genuine key was refused"


async def test_a_revoked_key_is_refused_with_401(api: PartnerApi) -> None:
    key = await api.issue(POINTS_READ)
    await api.revoke(key)
    assert_problem(await api.balance("m-1", key), 401, "api_key_revoked")


async def test_a_revocation_reaches_a_cached_key_within_the_cache_ttl(api: PartnerApi) -> None:
    key = await api.issue(POINTS_READ)
    assert (await api.balance("m-1", key)).status_code == 200, "a fresh key was refused"
    await api.revoke(key)
    await asyncio.sleep(AUTH_CACHE_TTL + 0.1)
    assert_problem(await api.balance("m-1", key), 401, "api_key_revoked")


async def test_a_key_without_the_scope_is_refused_with_403(api: PartnerApi) -> None:
    reader = await api.issue(POINTS_READ, REWARDS_CLAIM)
    body = assert_problem(await api.redeem("m-1", reader), 403, "scope_missing")
    assert body["required_scope"] == "points:redeem", "the refusal does not name the scope"
    assert (await api.balance("m-1", reader)).status_code == 200, "points:read was not honoured"


async def test_an_admin_key_passes_every_scope_for_any_merchant(api: PartnerApi) -> None:
    admin = await api.issue(Scope.ADMIN)
    for merchant in ("m-1", "m-2"):
        assert (await api.balance(merchant, admin)).status_code == 200, "admin could not read"
        assert (await api.redeem(merchant, admin)).status_code == 200, "admin could not redeem"


async def test_a_merchant_bound_key_acts_only_for_its_merchant(api: PartnerApi) -> None:
    key = await api.issue(POINTS_READ, POINTS_REDEEM, merchant="m-acme")
    own = await api.balance("m-acme", key)
    assert own.status_code == 200, f"a key could not act for its own merchant: {own.text}"
    assert_problem(await api.balance("m-other", key), 403, "merchant_mismatch")
    assert_problem(await api.redeem("m-other", key), 403, "merchant_mismatch")
    assert (await api.redeem("m-acme", key)).status_code == 200, "own-merchant redeem refused"


# -- the operator's command line ------------------------------------------------------


async def _loyalty(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def _authenticate(db_url: str, plaintext: str) -> ApiPrincipal:
    engine = create_engine(db_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await authenticate(conn, plaintext)
    finally:
        await engine.dispose()


async def test_keys_are_created_listed_and_revoked_from_the_cli(
    points_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--service", "points", "--database-url", points_db)
    scopes = ("--scope", "points:read", "--scope", "points:redeem")
    created = await _loyalty(
        "keys", "create", *db, "--name", "Acme POS", *scopes, "--merchant", "m1"
    )
    plaintext = capsys.readouterr().out.strip()
    assert created == 0 and plaintext.startswith("lk_"), "create did not print the key"
    principal = await _authenticate(points_db, plaintext)
    assert principal.scopes == {POINTS_READ, POINTS_REDEEM}, "scopes were not stored"
    assert principal.merchant_id == "m1", "the merchant binding was not stored"

    assert await _loyalty("keys", "list", *db) == 0
    listing = capsys.readouterr().out
    row = next(line for line in listing.splitlines() if line.startswith(principal.key_id))
    assert row.split("\t")[1:4] == ["Acme POS", "points:read,points:redeem", "m1"], row
    assert row.endswith("active") and plaintext.split("_", 2)[2] not in listing, listing

    assert await _loyalty("keys", "revoke", *db, principal.key_id) == 0
    with pytest.raises(Unauthorized) as refused:
        await _authenticate(points_db, plaintext)
    assert refused.value.code == "api_key_revoked", "a key revoked from the CLI still works"
    assert await _loyalty("keys", "list", "--active", *db) == 0
    assert principal.key_id not in capsys.readouterr().out, "--active listed a revoked key"


async def test_the_cli_refuses_unknown_keys_and_scopes(
    points_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--service", "points", "--database-url", points_db)
    assert await _loyalty("keys", "revoke", *db, "0123456789abcdef") == 1
    assert "no API key 0123456789abcdef" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        await _loyalty("keys", "create", *db, "--name", "x", "--scope", "points:write")
    assert usage.value.code == 2, "an unknown scope was not refused as a usage error"


async def test_the_cli_finds_the_database_in_the_devinfra_env_file(
    points_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "env").write_text(
        f"export KAFKA_BOOTSTRAP_SERVERS=x\nexport POINTS_DATABASE_URL={points_db}\n"
    )
    monkeypatch.setenv("LOYALTY_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("POINTS_DATABASE_URL", raising=False)
    assert (
        await _loyalty("keys", "create", "--service", "points", "--name", "n", "--scope", "admin")
        == 0
    )
    assert capsys.readouterr().out.startswith("lk_"), "no key printed with the env-file database"
    monkeypatch.setenv("LOYALTY_VAR_DIR", str(tmp_path / "missing"))
    assert await _loyalty("keys", "list", "--service", "points") == 1
    assert "POINTS_DATABASE_URL" in capsys.readouterr().err, "the error does not say what to set"
