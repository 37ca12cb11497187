"""Builders and probes for the rewards integration tests: private topics per test, the
rewards consumer and relay as the service runs them, and points events as the points
service would publish them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.rewards.app import build_app
from services.rewards.handlers import rewards_registry
from services.rewards.settings import RewardsSettings, RewardsTopics
from shared.auth import create_key
from shared.contracts.envelope import EventEnvelope
from shared.contracts.registry import decode_event
from shared.contracts.topics import dead_letter_topic
from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from shared.settings import KafkaSettings
from tests.support.counting import publish, wait_until
from tests.support.dlq import read_topic
from tests.support.infra import Infra
from tests.support.running import Running, running_consumer

NOW = datetime.now(UTC).replace(microsecond=0)
RESTAURANT = "hotel-restaurant"  # the merchant of the seeded dish-wait policy


def envelope(event_type: str, customer: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "version": 1,
        "occurred_at": at.isoformat(),
        "source": "test",
        "customer_id": customer,
        "data": data,
    }


def snapshot(
    available: int = 0,
    lifetime: int = 0,
    tier: str = "member",
    purchases: int = 0,
    first: bool = False,
) -> dict[str, Any]:
    return {
        "available": available,
        "pending": 0,
        "debt": 0,
        "lifetime_earned": lifetime,
        "purchase_count": purchases,
        "first_purchase": first,
        "tier": tier,
    }


def accrued(
    customer: str,
    order_id: str,
    at: datetime,
    merchant: str = RESTAURANT,
    points: int = 10,
    **snap: Any,
) -> dict[str, Any]:
    data = {**snapshot(**snap), "order_id": order_id, "merchant_id": merchant, "points": points}
    return envelope("points.accrued", customer, at, data)


def purchase(
    customer: str,
    order_id: str,
    amount: str = "80.00",
    merchant: str = RESTAURANT,
    at: datetime | None = None,
    currency: str = "EUR",
) -> dict[str, Any]:
    """A `purchase.completed` as a point of sale publishes it: the order rewards records."""
    data = {
        "order_id": order_id,
        "merchant_id": merchant,
        "store_id": "s-1",
        "amount": amount,
        "currency": currency,
    }
    return envelope("purchase.completed", customer, at or days_ago(1), data)


def returned(
    customer: str,
    order_id: str,
    amount: str,
    merchant: str = RESTAURANT,
    at: datetime | None = None,
) -> dict[str, Any]:
    data = {
        "return_id": f"r-{uuid.uuid4().hex[:10]}",
        "order_id": order_id,
        "merchant_id": merchant,
        "refunded_amount": amount,
        "currency": "EUR",
    }
    return envelope("purchase.returned", customer, at or NOW, data)


def incident(
    customer: str,
    order_id: str,
    minutes: str,
    amount: str = "80.00",
    merchant: str = RESTAURANT,
    at: datetime | None = None,
    promise: str = "dish_wait_time",
) -> dict[str, Any]:
    data = {
        "incident_id": f"inc-{uuid.uuid4().hex[:10]}",
        "merchant_id": merchant,
        "promise_kind": promise,
        "measured": {"value": minutes, "unit": "minutes"},
        "order_id": order_id,
        "order_amount": amount,
        "currency": "EUR",
    }
    return envelope("service.incident", customer, at or NOW, data)


@dataclass
class RewardsStack:
    """One test's topics, consumer group and rewards database."""

    infra: Infra
    db_url: str
    unique: str
    engine: AsyncEngine

    @property
    def points_topic(self) -> str:
        return f"loyalty.points.{self.unique}"

    @property
    def incidents(self) -> str:
        return f"ops.service-incidents.{self.unique}"

    @property
    def purchases(self) -> str:
        return f"pos.purchases.{self.unique}"

    @property
    def rewards(self) -> str:
        return f"loyalty.rewards.{self.unique}"

    @property
    def group(self) -> str:
        return f"rewards-{self.unique}"

    @property
    def topics(self) -> RewardsTopics:
        return RewardsTopics(rewards=self.rewards, ops=self.incidents)

    @asynccontextmanager
    async def consumer(self, group: str | None = None) -> AsyncIterator[Running]:
        async with running_consumer(
            self.infra.bootstrap_servers,
            self.db_url,
            group or self.group,
            [self.points_topic, self.incidents, self.purchases],
            rewards_registry(self.topics),
            max_batch=200,
        ) as running:
            yield running

    async def handled(self) -> int:
        async with self.engine.connect() as conn:
            done = await conn.scalar(sa.text("SELECT count(*) FROM processed_events"))
            dead = await conn.scalar(sa.text("SELECT count(*) FROM dead_letters"))
        return int(done or 0) + int(dead or 0)

    async def wait_handled(self, expected: int) -> None:
        async def reached() -> object:
            count = await self.handled()
            return True if count >= expected else f"{count}/{expected} events handled"

        await wait_until(reached, timeout=30)

    async def caught_up(self, running: Running) -> None:
        """Wait until `running`'s group has committed every message of its topics."""
        consumer = running.consumer.consumer

        async def committed_all() -> object:
            assigned = consumer.assignment()
            if not assigned:
                return "no partitions assigned yet"
            ends = await consumer.end_offsets(list(assigned))
            behind = {str(tp): (await consumer.committed(tp), end) for tp, end in ends.items()}
            late = {k: v for k, v in behind.items() if (v[0] or 0) < v[1]}
            return True if not late else f"behind: {late}"

        await wait_until(committed_all, timeout=30)

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return await conn.scalar(sa.text(sql), params)

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.text(sql), params)).all())

    async def execute(self, sql: str, **params: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sa.text(sql), params)

    async def publish_in_batches(
        self, topic: str, batches: list[list[dict[str, Any]]], handled: int
    ) -> None:
        """Publish each batch once the consumer handled the one before (`handled` events
        already), so that every later batch reads what the earlier ones wrote."""
        for batch in batches:
            await publish(self.infra.bootstrap_servers, topic, batch)
            handled += len(batch)
            await self.wait_handled(handled)

    async def outbox_empty(self) -> None:
        async def drained() -> object:
            left = await self.scalar("SELECT count(*) FROM outbox")
            return True if left == 0 else f"{left} outbox rows unsent"

        await wait_until(drained, timeout=20)

    async def emitted(self, expected: int, topic: str | None = None) -> list[EventEnvelope]:
        records = await read_topic(
            self.infra.bootstrap_servers, topic or self.rewards, expected, 20
        )
        return [decode_event(r.value) for r in records if r.value is not None]


@asynccontextmanager
async def rewards_stack(infra: Infra, db_url: str, unique: str) -> AsyncIterator[RewardsStack]:
    engine = create_engine(db_url, pool_size=4)
    stack = RewardsStack(infra, db_url, unique, engine)
    await ensure_topics(
        infra.bootstrap_servers,
        [
            stack.points_topic,
            stack.incidents,
            stack.purchases,
            stack.rewards,
            dead_letter_topic(stack.group),
        ],
        partitions=1,
    )
    try:
        yield stack
    finally:
        await engine.dispose()


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def service_settings(stack: RewardsStack, workers: bool = True) -> RewardsSettings:
    """The rewards service's settings pointed at `stack`'s topics, group and database."""
    return RewardsSettings(
        database_url=stack.db_url,
        consumer_group=stack.group,
        points_topic=stack.points_topic,
        incidents_topic=stack.incidents,
        purchases_topic=stack.purchases,
        rewards_topic=stack.rewards,
        ops_topic=stack.incidents,
        run_workers=workers,
        jobs_interval_seconds=3600,
    )


@asynccontextmanager
async def serving(
    stack: RewardsStack,
    infra: Infra,
    workers: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """The rewards app (and, with `workers`, its consumer, relay and jobs) behind an
    HTTP client holding an admin key."""
    app = build_app(
        service_settings(stack, workers),
        kafka=KafkaSettings(bootstrap_servers=infra.bootstrap_servers),
        clock=clock,
    )
    async with stack.engine.begin() as conn:
        key = await create_key(conn, "test", ["admin"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key.plaintext}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://rewards", headers=headers
        ) as client:
            yield client
