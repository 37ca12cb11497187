"""The points app over HTTP for tests: a settable clock, API keys, problem+json checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from services.points.app import build_app
from services.points.settings import PointsSettings
from shared.auth import Scope, create_key
from shared.http import PROBLEM_JSON
from shared.settings import KafkaSettings
from tests.support.infra import Infra


@dataclass
class SettableClock:
    """The app's clock: the real time unless a test pins it."""

    pinned: datetime | None = None

    def __call__(self) -> datetime:
        return self.pinned or datetime.now(UTC)


@dataclass
class PointsApi:
    app: FastAPI
    client: httpx.AsyncClient
    clock: SettableClock

    async def key(self, *scopes: Scope, merchant: str | None = None) -> dict[str, str]:
        """Authorization headers for a new key with `scopes`."""
        async with self.app.state.engine.begin() as conn:
            issued = await create_key(conn, "points test", scopes, merchant)
        return {"Authorization": f"Bearer {issued.plaintext}"}

    async def key_id(self, headers: dict[str, str]) -> str:
        return headers["Authorization"].split("_")[1]

    async def balance(self, customer: str, headers: dict[str, str]) -> dict[str, Any]:
        response = await self.client.get(f"/v1/customers/{customer}/balance", headers=headers)
        assert response.status_code == 200, f"balance of {customer}: {response.text}"
        body: dict[str, Any] = response.json()
        return body

    async def redeem(
        self,
        customer: str,
        points: int,
        key: str,
        headers: dict[str, str],
        merchant: str = "cinema",
        reference: str = "basket-1",
    ) -> httpx.Response:
        return await self.client.post(
            f"/v1/customers/{customer}/redemptions",
            json={"points": points, "merchant_id": merchant, "reference": reference},
            headers={**headers, "Idempotency-Key": key},
        )

    async def adjust(
        self, customer: str, points: int, adjustment_id: str, headers: dict[str, str], **extra: Any
    ) -> httpx.Response:
        body = {"adjustment_id": adjustment_id, "customer_id": customer, "points": points}
        return await self.client.post(
            "/v1/admin/adjustments", json={"reason": "goodwill", **body, **extra}, headers=headers
        )


@asynccontextmanager
async def points_api(
    infra: Infra, db_url: str, *, run_workers: bool = False, **settings: Any
) -> AsyncIterator[PointsApi]:
    """The real app (lifespan entered) on `db_url`, HTTP only unless `run_workers`."""
    clock = SettableClock()
    app = build_app(
        PointsSettings(
            database_url=db_url, run_workers=run_workers, auth_cache_seconds=0, **settings
        ),
        kafka=KafkaSettings(bootstrap_servers=infra.bootstrap_servers),
        clock=clock,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://points") as client:
            yield PointsApi(app, client, clock)


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The problem+json body, after checking status, media type, code and standard members."""
    assert response.status_code == status, (
        f"expected {status} {code}, got {response.status_code}: {response.text}"
    )
    assert response.headers["content-type"] == PROBLEM_JSON, "errors must be problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, f"expected error code {code}, got {body.get('code')}"
    assert body["status"] == status and body["title"] and body["type"].endswith(code)
    return body
