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

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts.clock import FixedClock
from services.alerts.handlers import alerts_registry
from services.alerts.scanner import AlertScanner, ScanOutcome
from shared.contracts.envelope import EventEnvelope
from shared.contracts.registry import decode_event
from shared.db import create_engine
from shared.kafka.admin import ensure_topics
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
    published: int = 0
    received: list[EventEnvelope] = field(default_factory=list)

    async def publish(self, events: Sequence[dict[str, Any]]) -> None:
        await publish(self.infra.bootstrap_servers, self.pos_topic, list(events))
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
    await ensure_topics(infra.bootstrap_servers, [pos_topic, alerts_topic], partitions=2)
    engine = create_engine(db_url, pool_size=4)
    registry = alerts_registry(alerts_topic=alerts_topic)
    try:
        async with running_consumer(
            infra.bootstrap_servers, db_url, group, [pos_topic], registry, max_batch=100
        ):
            yield AlertsHarness(infra, db_url, engine, pos_topic, alerts_topic)
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
