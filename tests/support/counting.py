"""A deliberately non-idempotent test handler: any double application shows up as
two rows for one event id, and any loss as a missing row."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from shared.contracts.pos import PurchaseCompleted
from shared.db import asyncpg_dsn
from shared.kafka.handlers import BatchContext, HandlerRegistry

DDL = [
    "CREATE TABLE IF NOT EXISTS applications (event_id uuid NOT NULL, customer_id text NOT NULL,"
    " amount_minor bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS totals (customer_id text PRIMARY KEY, purchases int NOT NULL,"
    " amount_minor bigint NOT NULL)",
]

_INSERT = sa.text(
    "INSERT INTO applications (event_id, customer_id, amount_minor) "
    "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:customers AS text[]),"
    " CAST(:amounts AS bigint[]))"
)
_TOTALS = sa.text(
    "INSERT INTO totals (customer_id, purchases, amount_minor) "
    "SELECT c, count(*), sum(a) FROM unnest(CAST(:customers AS text[]), CAST(:amounts AS bigint[]))"
    " AS t(c, a) GROUP BY c "
    "ON CONFLICT (customer_id) DO UPDATE SET purchases = totals.purchases + excluded.purchases,"
    " amount_minor = totals.amount_minor + excluded.amount_minor"
)


def counting_registry(delay: float = 0.0) -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.batch("purchase.completed")
    async def count_purchases(ctx: BatchContext, events: Sequence[PurchaseCompleted]) -> None:
        params = {
            "ids": [e.event_id for e in events],
            "customers": [e.customer_id for e in events],
            "amounts": [e.data.amount_minor for e in events],
        }
        await ctx.conn.execute(_INSERT, params)
        await ctx.conn.execute(_TOTALS, params)
        if delay:
            await asyncio.sleep(delay)  # widens the window in which a crash hits mid-batch

    return registry


async def prepare(db_url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        for statement in DDL:
            await conn.execute(statement)
    finally:
        await conn.close()


async def applications(db_url: str) -> dict[uuid.UUID, int]:
    """How many times each event id was applied."""
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        rows = await conn.fetch("SELECT event_id, count(*) AS n FROM applications GROUP BY 1")
    finally:
        await conn.close()
    return {r["event_id"]: r["n"] for r in rows}


def purchase(
    customer: str, amount: str = "10.00", event_id: uuid.UUID | None = None, **overrides: Any
) -> dict[str, Any]:
    """A valid purchase.completed envelope as a dict (tests mutate it to make poison)."""
    event: dict[str, Any] = {
        "event_id": str(event_id or uuid.uuid4()),
        "type": "purchase.completed",
        "version": 1,
        "occurred_at": datetime(2026, 11, 1, 12, 0, tzinfo=UTC).isoformat(),
        "source": "pos-test",
        "customer_id": customer,
        "data": {
            "order_id": f"o-{uuid.uuid4().hex[:12]}",
            "merchant_id": "m1",
            "store_id": "s1",
            "amount": amount,
            "currency": "EUR",
            "items": [{"sku": "sku-1", "category": "food", "quantity": 1, "unit_price": amount}],
        },
    }
    event.update(overrides)
    return event


def amount_minor(event: dict[str, Any]) -> int:
    return int(Decimal(event["data"]["amount"]) * 100)


async def publish(
    bootstrap: str, topic: str, messages: Sequence[dict[str, Any] | bytes], key: bytes | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for message in messages:
            value = message if isinstance(message, bytes) else orjson.dumps(message)
            k = key or (
                message["customer_id"].encode()
                if isinstance(message, dict) and isinstance(message.get("customer_id"), str)
                else b"poison"
            )
            await producer.send(topic, value=value, key=k)
        await producer.flush()
    finally:
        await producer.stop()


async def wait_until(
    predicate: Callable[[], Awaitable[object]], timeout: float = 60, interval: float = 0.1
) -> None:
    """Poll an async predicate until it returns True; fail with what it last returned."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: object = None
    while asyncio.get_running_loop().time() < deadline:
        last = await predicate()
        if last is True:
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


async def totals_sum(db_url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(amount_minor), 0) FROM totals"))
    finally:
        await conn.close()
