"""What the scale tests share: service instances with a database engine and a producer,
sending a keyed stream, counting what was handled, the crash-and-stop sequence and the
final checks on the points books."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.points import PointsAccrued
from shared.contracts.registry import decode_event
from shared.db import create_engine
from tests.support.counting import wait_until
from tests.support.dlq import read_topic
from tests.support.services import ServiceProcess, group_assignment, start_service, wait_ready

Count = Callable[[], Awaitable[int]]
Check = Callable[[], Awaitable[object]]


@dataclass
class Instances:
    """Running instances of one service in one group, an engine on their database and a
    started producer; all stopped by `running_instances`."""

    processes: list[ServiceProcess]
    engine: AsyncEngine
    producer: AIOKafkaProducer


@asynccontextmanager
async def running_instances(
    service: str, env: dict[str, str], tmp_path: Path, db_url: str, bootstrap: str, count: int = 3
) -> AsyncIterator[Instances]:
    """`count` ready instances of `service`; killed (a crash) on the way out."""
    processes = [start_service(service, env, tmp_path, f"{service}-{i}") for i in range(count)]
    engine = create_engine(db_url, pool_size=2)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        await asyncio.gather(*(wait_ready(p) for p in processes))
        yield Instances(processes, engine, producer)
    finally:
        await producer.stop()
        for process in processes:
            process.kill()
        await engine.dispose()


async def send_keyed(
    producer: AIOKafkaProducer, topic: str, messages: Sequence[dict[str, Any]]
) -> None:
    """Send `messages` keyed by customer (their order per customer kept); wait for the acks."""
    futures = [
        await producer.send(topic, orjson.dumps(m), key=m["customer_id"].encode()) for m in messages
    ]
    await asyncio.gather(*futures)


def processed_events(engine: AsyncEngine, topic: str | None = None) -> Count:
    """Counts the events the service recorded as handled (from `topic` only, if given)."""
    query = "SELECT count(*) FROM processed_events"
    params = {} if topic is None else {"t": topic}
    if topic is not None:
        query += " WHERE topic = :t"

    async def count() -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(sa.text(query), params) or 0)

    return count


def at_least(count: Count, target: int) -> Check:
    async def check() -> object:
        value = await count()
        return True if value >= target else f"{value}/{target}"

    return check


def exactly(count: Count, target: int) -> Check:
    async def check() -> object:
        value = await count()
        return True if value == target else f"{value}/{target}"

    return check


async def wait_for_owners(
    bootstrap: str, group: str, topic: str, members: int = 3, *, partitions: int | None = None
) -> None:
    """Wait until `members` members of `group` each own partitions of `topic` (and, given
    `partitions`, they cover all of them), read from the group's own assignment."""

    async def owned() -> object:
        owners = await group_assignment(bootstrap, group)
        mine = {m: {p for t, p in o if t == topic} for m, o in owners.items()}
        if len(mine) != members or not all(mine.values()):
            return mine
        if partitions is not None and set().union(*mine.values()) != set(range(partitions)):
            return mine
        return True

    await wait_until(owned, timeout=90, interval=0.5)


async def send_through_a_crash_and_a_stop(
    instances: list[ServiceProcess],
    messages: Sequence[dict[str, Any]],
    send: Callable[[Sequence[dict[str, Any]]], Awaitable[None]],
    handled: Count,
) -> None:
    """Send the stream in thirds: instance 0 is killed (a crash) after half the first third
    was handled, instance 1 stopped in order (SIGTERM) after half the second."""
    third = len(messages) // 3
    await send(messages[:third])
    await wait_until(at_least(handled, third // 2), timeout=120, interval=0.2)
    instances[0].kill()
    await send(messages[third : 2 * third])
    await wait_until(at_least(handled, third + third // 2), timeout=180, interval=0.2)
    code = await asyncio.to_thread(instances[1].terminate)
    assert code in (0, -15), instances[1].tail()
    await send(messages[2 * third :])


async def assert_points_booked_once(
    engine: AsyncEngine,
    bootstrap: str,
    points_topic: str,
    messages: Sequence[dict[str, Any]],
    expected: dict[str, int],
    distinct: int,
) -> None:
    """Every event handled once, the outbox relayed, no dead letter, each balance as
    computed, and one `points.accrued` on the topic for every order bought."""
    orders = {m["data"]["order_id"] for m in messages if m["type"] == "purchase.completed"}
    await wait_until(exactly(processed_events(engine), distinct), timeout=300, interval=0.5)

    async def relayed() -> object:
        async with engine.connect() as conn:
            left = int(await conn.scalar(sa.text("SELECT count(*) FROM outbox")) or 0)
        return True if left == 0 else f"{left} outbox rows"

    await wait_until(relayed, timeout=120, interval=0.5)
    async with engine.connect() as conn:
        rows = await conn.execute(sa.text("SELECT customer_id, ledger_balance FROM accounts"))
        balances = {row.customer_id: row.ledger_balance for row in rows}
        dead = await conn.scalar(sa.text("SELECT count(*) FROM dead_letters"))
    assert dead == 0
    assert balances == expected
    records = await read_topic(bootstrap, points_topic, len(orders), 60)
    accrued = {
        event.data.order_id
        for event in (decode_event(r.value) for r in records if r.value is not None)
        if isinstance(event, PointsAccrued)
    }
    assert accrued == orders, f"{len(orders - accrued)} accruals never reached the topic"
