"""Builders and probes for the points integration tests.

Events are dated relative to the real clock (the consumer's clock is the real one), so
"a purchase yesterday" is pending now and available in 14 days.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.points.handlers import points_registry
from services.points.invariants import account_violations
from services.points.ledger.service import AccountView, read_account
from shared.contracts.envelope import EventEnvelope
from shared.contracts.registry import decode_event
from shared.contracts.topics import dead_letter_topic
from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from tests.support.counting import wait_until
from tests.support.dlq import read_topic
from tests.support.infra import Infra
from tests.support.running import Running, running_consumer

NOW = datetime.now(UTC).replace(microsecond=0)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def _envelope(event_type: str, customer: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "version": 1,
        "occurred_at": at.isoformat(),
        "source": "pos-test",
        "customer_id": customer,
        "data": data,
    }


def purchase(
    customer: str,
    order_id: str,
    amount: str,
    at: datetime,
    currency: str = "EUR",
    merchant: str = "grocer",
    items: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    lines = items or [{"sku": "sku-1", "category": "food", "quantity": 1, "unit_price": amount}]
    return _envelope(
        "purchase.completed",
        customer,
        at,
        {
            "order_id": order_id,
            "merchant_id": merchant,
            "store_id": "store-1",
            "amount": amount,
            "currency": currency,
            "items": lines,
        },
    )


def returned(
    customer: str,
    order_id: str,
    return_id: str,
    refunded: str,
    at: datetime,
    items: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "return_id": return_id,
        "order_id": order_id,
        "merchant_id": "grocer",
        "refunded_amount": refunded,
        "currency": "EUR",
    }
    if items is not None:
        data["items"] = items
    return _envelope("purchase.returned", customer, at, data)


def credit(customer: str, credit_id: str, points: int, at: datetime) -> dict[str, Any]:
    return _envelope(
        "points.credit_requested",
        customer,
        at,
        {"credit_id": credit_id, "points": points, "reason": "compensation: late dish"},
    )


@dataclass
class PointsStack:
    """One test's topics, consumer group and database."""

    infra: Infra
    db_url: str
    unique: str
    engine: AsyncEngine

    @property
    def inbound(self) -> str:
        return f"pos.purchases.{self.unique}"

    @property
    def credits(self) -> str:
        return f"loyalty.rewards.{self.unique}"

    @property
    def outbound(self) -> str:
        return f"loyalty.points.{self.unique}"

    @property
    def group(self) -> str:
        return f"points-{self.unique}"

    @property
    def dlq(self) -> str:
        return dead_letter_topic(self.group)

    @asynccontextmanager
    async def consumer(self, group: str | None = None) -> AsyncIterator[Running]:
        """The points consumer and its outbox relay, as the service runs them."""
        async with running_consumer(
            self.infra.bootstrap_servers,
            self.db_url,
            group or self.group,
            [self.inbound, self.credits],
            points_registry(points_topic=self.outbound),
            max_batch=200,
        ) as running:
            yield running

    async def handled(self) -> int:
        """Events applied or dead-lettered so far."""
        async with self.engine.connect() as conn:
            done = await conn.scalar(sa.text("SELECT count(*) FROM processed_events"))
            dead = await conn.scalar(sa.text("SELECT count(*) FROM dead_letters"))
        return int(done or 0) + int(dead or 0)

    async def wait_handled(self, expected: int) -> None:
        async def reached() -> object:
            count = await self.handled()
            return True if count >= expected else f"{count}/{expected} events handled"

        await wait_until(reached, timeout=30)

    async def account(self, customer: str, at: datetime | None = None) -> AccountView:
        async with self.engine.connect() as conn:
            view = await read_account(conn, customer, at or datetime.now(UTC))
        assert view is not None, f"customer {customer} has no points account"
        return view

    async def sound(self, customer: str) -> None:
        async with self.engine.connect() as conn:
            problems = await account_violations(conn, customer)
        assert problems == (), f"the books of {customer} do not balance: {problems}"

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return await conn.scalar(sa.text(sql), params)

    async def emitted(self, expected: int) -> list[EventEnvelope]:
        """Events the service published, in order, once at least `expected` arrived."""
        records = await read_topic(self.infra.bootstrap_servers, self.outbound, expected, 20)
        return [decode_event(r.value) for r in records if r.value is not None]


@asynccontextmanager
async def points_stack(infra: Infra, db_url: str, unique: str) -> AsyncIterator[PointsStack]:
    engine = create_engine(db_url, pool_size=2)
    stack = PointsStack(infra, db_url, unique, engine)
    await ensure_topics(
        infra.bootstrap_servers,
        [stack.inbound, stack.credits, stack.outbound, stack.dlq],
        partitions=1,
    )
    try:
        yield stack
    finally:
        await engine.dispose()
