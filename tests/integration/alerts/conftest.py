"""An alerts service wired to a real broker and PostgreSQL, with event time under test control.

`AlertsHarness` publishes point-of-sale events to a fresh topic, runs the alerts consumer
(with its outbox relay) on a fresh database, and scans with an explicit "now", so a test can
jump weeks ahead in a line.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts.app import build_app
from services.alerts.clock.service import AlertsClock, FixedClock
from services.alerts.handlers import alerts_registry
from services.alerts.lapse.service import AlertScanner, ScanOutcome
from services.alerts.settings import AlertsSettings
from shared.contracts.envelope import EventEnvelope
from shared.contracts.registry import decode_event
from shared.db import create_engine
from shared.http import PROBLEM_JSON
from shared.kafka.admin import ensure_topics
from shared.settings import KafkaSettings
from tests.support.counting import publish, purchase, wait_until
from tests.support.dlq import read_topic
from tests.support.infra import Databases, Infra
from tests.support.running import running_consumer

START = datetime(2026, 1, 3, 9, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def shopping(
    customer: str,
    at: datetime,
    amount: str = "60.00",
    merchant: str = "m1",
    category: str = "groceries",
    currency: str = "EUR",
) -> dict[str, Any]:
    """A purchase.completed event at `at` (event time), as published by a point of sale."""
    event = purchase(customer, amount, occurred_at=at.isoformat())
    event["data"].update(merchant_id=merchant, currency=currency)
    event["data"]["items"][0].update(category=category)
    return event


def refund(customer: str, at: datetime, amount: str, merchant: str = "m1") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "purchase.returned",
        "version": 1,
        "occurred_at": at.isoformat(),
        "source": "pos-test",
        "customer_id": customer,
        "data": {
            "return_id": f"r-{uuid.uuid4().hex[:10]}",
            "order_id": "o-any",
            "merchant_id": merchant,
            "refunded_amount": amount,
            "currency": "EUR",
        },
    }


def _snapshot(tier: str) -> dict[str, Any]:
    return {
        "available": 120,
        "pending": 0,
        "debt": 0,
        "lifetime_earned": 120,
        "purchase_count": 3,
        "tier": tier,
    }


def points_accrued(customer: str, at: datetime, tier: str) -> dict[str, Any]:
    """A points.accrued event as the points service publishes it, its snapshot in `tier`."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": "points.accrued",
        "version": 1,
        "occurred_at": at.isoformat(),
        "source": "points",
        "customer_id": customer,
        "data": {
            **_snapshot(tier),
            "order_id": f"o-{uuid.uuid4().hex[:10]}",
            "merchant_id": "m1",
            "points": 60,
        },
    }


def tier_changed(customer: str, at: datetime, tier: str, previous: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "tier.changed",
        "version": 1,
        "occurred_at": at.isoformat(),
        "source": "points",
        "customer_id": customer,
        "data": {
            **_snapshot(tier),
            "previous_tier": previous,
            "reason": "qualified",
            "qualifying_purchases": 3,
            "qualifying_spend": "180.00",
            "currency": "EUR",
        },
    }


def credit_requested(customer: str, at: datetime) -> dict[str, Any]:
    """A loyalty.rewards event the alerts service has no business with."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": "points.credit_requested",
        "version": 1,
        "occurred_at": at.isoformat(),
        "source": "rewards",
        "customer_id": customer,
        "data": {"credit_id": f"cr-{uuid.uuid4().hex[:10]}", "points": 50, "reason": "sorry"},
    }


def every(customer: str, days: float, visits: int, last: float) -> list[dict[str, Any]]:
    """`visits` purchases `days` apart, the last one on day `last`."""
    return [shopping(customer, day(last - days * k)) for k in reversed(range(visits))]


@dataclass
class AlertsHarness:
    infra: Infra
    db_url: str
    engine: AsyncEngine
    pos_topic: str
    alerts_topic: str
    points_topic: str = ""
    rewards_topic: str = ""
    published: int = 0
    received: list[EventEnvelope] = field(default_factory=list)

    async def publish(self, events: Sequence[dict[str, Any]], topic: str | None = None) -> None:
        """Publish to the purchases topic, or to `topic` (points, rewards)."""
        await publish(self.infra.bootstrap_servers, topic or self.pos_topic, list(events))
        self.published += len(events)

    async def settled(self) -> None:
        """Wait until every published event was applied (or dead-lettered)."""

        async def done() -> object:
            seen = await self.scalar(
                "SELECT (SELECT count(*) FROM processed_events)"
                " + (SELECT count(*) FROM dead_letters)"
            )
            return True if seen >= self.published else f"{seen}/{self.published} events applied"

        await wait_until(done, timeout=30)

    async def scan(self, now: datetime, batch_size: int = 500) -> ScanOutcome:
        scanner = AlertScanner(
            self.engine, FixedClock(now), batch_size=batch_size, alerts_topic=self.alerts_topic
        )
        return await scanner.scan_due()

    async def scalar(self, query: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return await conn.scalar(sa.text(query), params)

    async def rows(self, query: str, **params: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.text(query), params)).mappings().all())

    async def alert_events(self, expected: int, prefix: str = "") -> list[EventEnvelope]:
        """Events on the alerts topic whose type starts with `prefix`.

        Waits until `expected` events of ANY type arrived, then a little longer for stragglers.
        """
        records = await read_topic(
            self.infra.bootstrap_servers, self.alerts_topic, expected, timeout=15
        )
        events = [decode_event(r.value) for r in records if r.value is not None]
        return [e for e in events if e.type.startswith(prefix)]


@asynccontextmanager
async def alerts_service(
    infra: Infra,
    db_url: str,
    pos_topic: str,
    alerts_topic: str,
    group: str,
) -> AsyncIterator[AlertsHarness]:
    """The consumer on all three consumed topics: `<pos>`, `<pos>.points`, `<pos>.rewards`."""
    points_topic, rewards_topic = f"{pos_topic}.points", f"{pos_topic}.rewards"
    topics = [pos_topic, points_topic, rewards_topic]
    await ensure_topics(infra.bootstrap_servers, [*topics, alerts_topic], partitions=2)
    engine = create_engine(db_url, pool_size=4)
    registry = alerts_registry(alerts_topic=alerts_topic)
    try:
        async with running_consumer(
            infra.bootstrap_servers, db_url, group, topics, registry, max_batch=100
        ):
            yield AlertsHarness(
                infra, db_url, engine, pos_topic, alerts_topic, points_topic, rewards_topic
            )
    finally:
        await engine.dispose()


@pytest.fixture
async def alerts_db(databases: Databases) -> str:
    return await databases.fresh("alerts")


@pytest.fixture
async def harness(infra: Infra, alerts_db: str, unique: str) -> AsyncIterator[AlertsHarness]:
    async with alerts_service(
        infra, alerts_db, f"pos.{unique}", f"alerts.{unique}", f"g-alerts-{unique}"
    ) as running:
        yield running


@dataclass(frozen=True)
class Keys:
    """Bearer headers of API keys made for one test database."""

    reader: dict[str, str]
    admin: dict[str, str]
    bound_m2: dict[str, str]  # alerts:read, bound to merchant m2
    points_only: dict[str, str]


async def make_keys(engine: AsyncEngine) -> Keys:
    from services.alerts.scopes import ALERTS_READ
    from services.points.scopes import POINTS_READ
    from shared.auth import Scope, create_key

    async def bearer(name: str, scopes: list[Scope], merchant: str | None = None) -> dict[str, str]:
        async with engine.begin() as conn:
            issued = await create_key(conn, name, scopes, merchant)
        return {"Authorization": f"Bearer {issued.plaintext}"}

    return Keys(
        reader=await bearer("crm desk", [ALERTS_READ]),
        admin=await bearer("ops admin", [Scope.ADMIN]),
        bound_m2=await bearer("store m2", [ALERTS_READ], "m2"),
        points_only=await bearer("partner app", [POINTS_READ]),
    )


@asynccontextmanager
async def api_client(
    infra: Infra, db_url: str, clock: AlertsClock
) -> AsyncIterator[httpx.AsyncClient]:
    """The alerts HTTP app (no workers: the harness consumes) behind an in-process client."""
    app = build_app(
        AlertsSettings(database_url=db_url, run_workers=False),
        kafka=KafkaSettings(bootstrap_servers=infra.bootstrap_servers),
        clock=clock,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            yield client


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The problem+json body of `response`, after checking its status and code."""
    assert response.status_code == status, f"expected {status}, got {response.text}"
    assert response.headers["content-type"] == PROBLEM_JSON, "error is not problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, f"expected code {code}, got {body}"
    return body
