"""Transactional outbox: events leave a service only through its own database.

`OutboxWriter` collects messages during a transaction and inserts them in one
statement before commit; `OutboxRelay` publishes committed rows in id order and
deletes them. Delivery to the topic is at least once: a crash after publishing and
before the delete re-sends rows (same event ids); every consumer deduplicates by
event id, so the effect stays exactly once. Within one relay's life the producer is
idempotent where the broker supports it (`relay_producer`), so the producer's own
retries (a lost acknowledgement, a leader change) never write a message twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa
from aiokafka.partitioner import DefaultPartitioner, murmur2
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.contracts.envelope import EventEnvelope
from shared.contracts.registry import encode_plain_event
from shared.db import driver_connection, outbox, transaction_driver
from shared.errors import is_transient
from shared.telemetry import OUTBOX_BACKLOG, OUTBOX_PUBLISHED

log = logging.getLogger(__name__)

# pg advisory lock key: one relay publishes at a time per database, which keeps
# each customer's events in order across several service instances.
_RELAY_LOCK_KEY = 0x10_7A_17_0B


@dataclass(slots=True)
class OutboxMessage:
    """One outgoing message. Slots and a shared empty `headers` default: one is made per
    outgoing event, and a list each cost ~0.08 µs more (4,000 messages, this machine)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, str]] = ()


@dataclass(slots=True)
class EncodedEvent:
    """An outgoing event already written as the bytes `encode_event` gives its validated
    instance, and the key the outbox gives it (its customer id): the outbox queues them
    as they are. For a hot path whose builder writes those bytes in one step (the points
    service's accrual events)."""

    key: bytes
    value: bytes


Outgoing = EventEnvelope | EncodedEvent
"""What a unit of work's outbox takes: an event, or one already encoded."""


class OutboxWriter:
    """Buffers outgoing messages of one transaction; `flush` writes them with one INSERT."""

    def __init__(self) -> None:
        self.pending: list[OutboxMessage] = []

    def emit(self, topic: str, event: Outgoing) -> None:
        """Queue an event for `topic`, keyed by its customer id (`encode_plain_event`: the
        bytes of `encode_event`, by orjson where the event's model allows it)."""
        if isinstance(event, EncodedEvent):
            self.pending.append(OutboxMessage(topic, event.key, event.value))
        else:
            value = encode_plain_event(event)
            self.pending.append(OutboxMessage(topic, event.customer_id.encode(), value))

    def emit_raw(self, message: OutboxMessage) -> None:
        self.pending.append(message)

    async def flush(self, conn: AsyncConnection) -> int:
        """Write the queued messages in the caller's transaction: a few by one INSERT, a
        consumer batch's worth by one binary COPY.

        An INSERT of many rows through the driver's executemany inspects every value
        against abstract base classes (~8 µs per message on the points hot path, `python
        -m bench points`); COPY encodes each value once, but costs an extra round trip,
        which an HTTP request writing one message would only wait for.
        A COPY of messages none of which has headers (all of a points batch but its dead
        letters) leaves the headers column to its default, '[]': each row's empty list
        dumped to JSON and through the engine's JSONB encoder cost ~0.4 µs (4,000
        messages, this machine).
        """
        pending = self.pending
        if not pending:
            return 0
        count = len(pending)
        if count < _COPY_FROM:
            await conn.execute(sa.insert(outbox), [_row(m) for m in pending])
        else:
            driver = await transaction_driver(conn)
            records: list[tuple[Any, ...]]
            if any(m.headers for m in pending):
                records = [_record(m) for m in pending]
                columns = _COPY_COLUMNS
            else:
                records = [(m.topic, m.key, m.value) for m in pending]
                columns = _COPY_NO_HEADERS
            await driver.copy_records_to_table("outbox", records=records, columns=columns)
        pending.clear()
        return count


_COPY_FROM = 64  # messages; fewer go by INSERT
_COPY_COLUMNS = ["topic", "key", "value", "headers"]
_COPY_NO_HEADERS = ["topic", "key", "value"]


def _row(message: OutboxMessage) -> dict[str, Any]:
    return {
        "topic": message.topic,
        "key": message.key,
        "value": message.value,
        "headers": [list(h) for h in message.headers],
    }


def _record(message: OutboxMessage) -> tuple[str, bytes | None, bytes, str]:
    """A COPY record: JSON columns travel as text."""
    headers = orjson.dumps([list(h) for h in message.headers]).decode()
    return (message.topic, message.key, message.value, headers)


async def write_to_outbox(
    conn: AsyncConnection, messages: Sequence[EventEnvelope], topic: str
) -> None:
    """Convenience for HTTP handlers: emit events within the caller's transaction."""
    writer = OutboxWriter()
    for event in messages:
        writer.emit(topic, event)
    await writer.flush(conn)


_PARTITIONER = DefaultPartitioner()
_KEY_HASHES_KEPT = 100_000  # keys kept: ~15 MB at most for customer ids
_TRY_LEAD = sa.text("SELECT pg_try_advisory_xact_lock(:key)")
# The oldest rows, taken out in the relay's transaction (a rollback puts them back).
# The ids are picked by an ARRAY(...) sub-select, which PostgreSQL runs once (an InitPlan)
# whatever plan it chooses. `WHERE id IN (SELECT ... LIMIT ... FOR UPDATE SKIP LOCKED)`
# may be planned as a nested loop that runs the sub-select again for every outbox row:
# with a plan cached while the outbox was small, one pass over a 100,000-row backlog ran
# for minutes (`python -m bench foundation alerts points`: relayed 1.1k/s against 3.3k/s
# committed), and the backlog grew behind it.
# Headers come back as text, NULL when there are none (most rows: only dead letters carry
# headers): the engine's connections decode JSONB with SQLAlchemy's codec, the standard
# library's json, which cost ~2.5 µs per row even for '[]' (relay alone, 60,000 points
# events: 7.2 -> 4.6 µs of CPU per message together with the C sort key below); a NULL is
# not decoded at all, and the few others go through orjson.
_TAKE_BATCH = (
    "DELETE FROM outbox WHERE id = ANY(ARRAY("
    "SELECT id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED))"
    " RETURNING id, topic, key, value, NULLIF(headers, '[]'::jsonb)::text"
)
# DELETE ... RETURNING gives no order; publishing must follow the outbox's. Sorted here:
# an ORDER BY over the DELETE (a WITH query) cost PostgreSQL ~1 µs more per row (same run).
_BY_ID = itemgetter(0)
# Whether there is anything to take: the oldest row by the primary key's index, as the
# take itself looks (a scan of the table would walk the rows deleted since its last vacuum).
# Not EXISTS: PostgreSQL drops the ORDER BY inside one, and scans the table.
_ANY_ROW = "SELECT id FROM outbox ORDER BY id LIMIT 1"
_NO_HEADERS: list[tuple[str, bytes]] = []  # shared, never changed


def _headers(raw: str | None) -> list[tuple[str, bytes]]:
    """The headers column (JSON text, or NULL for none) as the producer takes them."""
    if raw is None:
        return _NO_HEADERS
    return [(name, value.encode()) for name, value in orjson.loads(raw)]


_PRODUCER_ID_PROBE_SECONDS = 10


# InitProducerId answers meaning "yes, but not yet": the transaction log is being created
# or loaded (a new broker), or its coordinator moves.
_NOT_YET = {14, 15, 16}  # COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR


async def broker_grants_producer_ids(producer: Any) -> bool:
    """Ask a broker for a producer id (InitProducerId), as an idempotent producer would.

    Apache Kafka grants one (after "not yet" answers while its transaction log is
    created); Tansu answers UNKNOWN_SERVER_ERROR, and an idempotent aiokafka producer
    would then fail every send.
    """
    from aiokafka.protocol.transaction import InitProducerIdRequest

    client = producer.client
    code = -1
    try:
        async with asyncio.timeout(_PRODUCER_ID_PROBE_SECONDS):
            while True:
                answer = await client.send(
                    client.get_random_node(), InitProducerIdRequest(None, 60_000)
                )
                code = int(answer.error_code)
                if code not in _NOT_YET:
                    break
                await asyncio.sleep(0.2)
    except TimeoutError:
        return code in _NOT_YET  # it knows producer ids, it is just slow to hand one out
    except Exception as exc:  # an old or foreign broker: no idempotence
        log.info("broker did not grant a producer id: %r", exc)
        return False
    return code == 0


# Bytes of one record batch the relay fills (a partition's share of a relay pass). With
# the producer's default 16 KB, a pass of 4,000 points events (~400 bytes each, 8
# partitions) was ~100 batches, each a future, a drain wait and a slot in a produce
# request: 512 KB makes it one batch per partition, ~1 µs less of the relay's CPU per
# message and half the broker's (relay alone, 60,000 messages, 16 KB against 256 KB and
# 1 MB). Half of the broker's default largest batch (max.message.bytes, 1 MB).
RELAY_BATCH_BYTES = 512 * 1024


async def relay_producer(bootstrap_servers: str, client_id: str, idempotence: str = "auto") -> Any:
    """A started producer for the outbox relay: acks=all, idempotent where possible,
    record batches of `RELAY_BATCH_BYTES`.

    `idempotence`: `auto` probes the broker, `on` requires it (the relay fails to start
    on a broker without it), `off` never asks.
    """
    from aiokafka import AIOKafkaProducer

    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "client_id": client_id,
        "linger_ms": 5,
        "acks": "all",
        "max_batch_size": RELAY_BATCH_BYTES,
    }
    if idempotence == "off":
        producer = AIOKafkaProducer(**options)
        await producer.start()
        return producer
    if idempotence == "auto":
        probe = AIOKafkaProducer(**options)
        await probe.start()
        try:
            granted = await broker_grants_producer_ids(probe)
        finally:
            await probe.stop()
        if not granted:
            log.info("outbox relay %s: broker has no idempotent producer; acks=all", client_id)
            producer = AIOKafkaProducer(**options)
            await producer.start()
            return producer
    producer = AIOKafkaProducer(**options, enable_idempotence=True)
    await producer.start()
    return producer


def is_idempotent(producer: Any) -> bool:
    """Whether `producer` was started as an idempotent producer."""
    manager = getattr(producer, "_txn_manager", None)
    return manager is not None


class OutboxRelay:
    """Publishes outbox rows to Kafka in batches; safe to run in several instances."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: object,
        *,
        service: str,
        batch_size: int = 2000,
        idle_interval: float = 0.05,
        idle_max: float = 0.2,
    ) -> None:
        self.engine = engine
        self.producer = producer
        self.service = service
        self.batch_size = batch_size
        self.idle_interval = idle_interval
        self.idle_max = idle_max
        self.wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._key_hashes: dict[bytes, int] = {}

    def stop(self) -> None:
        self._stopping.set()
        self.wakeup.set()

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were sent (0 if none or not the leader).

        The rows are taken (deleted, returning their content) and published inside one
        transaction: if publishing fails the transaction rolls back and the rows are back;
        a crash after publishing and before the commit re-sends them (at least once, as
        the module says). Statements go to asyncpg directly: through SQLAlchemy, a row
        object per message and a second statement to delete cost ~10 µs per message
        (`python -m bench points`, phase "relay: select + delete rows").
        Most polls find the outbox empty (the idle polls between two consumer batches):
        one statement outside a transaction says so, where the lock, the take and a
        transaction around them were five round trips and ~500 µs of CPU (~200 µs now,
        relay alone on an empty outbox).
        """
        async with self.engine.connect() as conn:
            driver = await driver_connection(conn)
            if await driver.fetchval(_ANY_ROW) is None:
                return 0
            async with conn.begin():
                # Through SQLAlchemy first: it begins its transaction on its first
                # statement, and the driver's statements must run inside that one.
                if not await conn.scalar(_TRY_LEAD, {"key": _RELAY_LOCK_KEY}):
                    return 0
                rows = await driver.fetch(_TAKE_BATCH, self.batch_size)
                if not rows:
                    return 0
                rows.sort(key=_BY_ID)
                await self._publish(rows)
        OUTBOX_PUBLISHED.labels(self.service).inc(len(rows))
        return len(rows)

    async def _publish(self, rows: Sequence[Any]) -> None:
        """Send the rows (id, topic, key, value, headers) as record batches, one open batch
        per partition, in id order.

        A key goes to the partition the producer's default partitioner gives it (murmur2 of
        the key, as Java clients do), so a customer's events keep their order. Batches of a
        partition are queued in order, and the producer sends them in that order.
        `producer.send` costs ~30 µs of CPU per message (a future, the partitioner and the
        accumulator each time); appending to a batch ~9 µs (20,000 messages, this machine).
        The loop below is the relay's per-message Python, so it calls nothing it need not
        (the partition's arithmetic inline, a topic's state looked up once per run of rows
        of that topic, which is every row of a points batch).
        """
        producer: Any = self.producer
        key_hashes = self._key_hashes
        topics: dict[str, tuple[list[int], dict[int, Any]]] = {}
        futures = []
        current = None
        every: list[int] = []
        batches: dict[int, Any] = {}
        for _, topic, key, value, raw_headers in rows:
            if topic != current:
                state = topics.get(topic)
                if state is None:
                    every = sorted(await producer.partitions_for(topic))
                    state = topics[topic] = (every, {})
                every, batches = state
                current = topic
            if key is None:
                partition = int(_PARTITIONER(key, every, every))
            else:
                hashed = key_hashes.get(key)
                if hashed is None:
                    hashed = self._key_hash(key)
                partition = every[hashed % len(every)]
            headers = _NO_HEADERS if raw_headers is None else _headers(raw_headers)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[partition] = producer.create_batch()
                # An empty batch always takes its first record, whatever its size.
                batch.append(key=key, value=value, timestamp=None, headers=headers)
        for topic, (_, open_batches) in topics.items():
            for partition, batch in open_batches.items():
                futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)

    def _key_hash(self, key: bytes) -> int:
        """The default partitioner's hash of `key`, kept for the next message with it.

        aiokafka's murmur2 is pure Python, ~3 µs for a customer id, a seventh of the
        relay's CPU (`python -m bench points`); customers come back, so each key's hash is
        kept (a bounded map, emptied when full) and only the modulo is done per message.
        """
        if len(self._key_hashes) >= _KEY_HASHES_KEPT:
            self._key_hashes.clear()
        hashed = self._key_hashes[key] = int(murmur2(key)) & 0x7FFFFFFF
        return hashed

    async def backlog(self) -> int:
        async with self.engine.connect() as conn:
            count = int(await conn.scalar(sa.select(sa.func.count()).select_from(outbox)) or 0)
        OUTBOX_BACKLOG.labels(self.service).set(count)
        return count

    async def run(self) -> None:
        """Relay until stopped; transient faults wait and retry, nothing is skipped.

        Woken by `wakeup` (set after a local commit that wrote outbox rows), and otherwise
        polling for rows other processes wrote: every `idle_interval` at first, then twice
        as long after each empty poll, up to `idle_max`. An empty poll costs a pool
        checkout, five statements and their round trips; at a fixed 50 ms they were most
        of the relay's own CPU between consumer batches (`python -m bench points`).
        `idle_max` stays short because a row another instance committed (its own relay
        lost the leader lock to this one) waits for this poll.
        A wakeup that comes while a batch is being published is kept, not lost.
        """
        delay, idle = 0.1, self.idle_interval
        while not self._stopping.is_set():
            self.wakeup.clear()  # a commit from here on cuts the next idle sleep short
            try:
                sent = await self.relay_once()
                delay = 0.1
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("outbox relay: transient fault, retrying in %.1fs: %s", delay, exc)
                self.wakeup.clear()  # a fault backs off whatever commits meanwhile
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if sent >= self.batch_size:
                idle = self.idle_interval
                continue
            woken = await self._sleep(idle)
            idle = self.idle_interval if sent or woken else min(idle * 2, self.idle_max)

    async def _sleep(self, seconds: float) -> bool:
        """Wait `seconds` or until woken (True), whichever comes first."""
        try:
            await asyncio.wait_for(self.wakeup.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True
