"""The exactly-once batch consumer every service runs.

One `getmany` batch is decoded, deduplicated and applied in ONE database
transaction that also records each event id in `processed_events`; offsets are
committed only after that transaction commits. Poison messages are recorded in
`dead_letters` (once per offset: the row's key is the offset) and queued for
`<group>.dlq` through the outbox in the same transaction. Transient faults
(database or broker down) are retried with backoff and never skip an offset.

What the output topics promise (events and dead letters alike): every message a
committed transaction queued is published at least once, in order per key. The
relay's producer is idempotent where the broker supports it (Apache Kafka), so a
send the producer retries is never written twice; a relay that dies between
publishing and deleting its rows publishes them again when it restarts (same
event id, or same `dlq.original.*` headers). Readers deduplicate by those, as this
runtime does with `processed_events`.

Group membership (static ids, session, heartbeat and rebalance timeouts) comes
from `shared.kafka.membership`. An orderly stop always leaves the group, also in
generation 0 (Tansu numbers its first generation 0, where aiokafka would not send
LeaveGroup and the group would wait out the session as after a crash).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

import asyncpg
import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.protocol.group import LeaveGroupRequest
from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.contracts.envelope import EventEnvelope
from shared.contracts.registry import ContractError, decode_document, document_fingerprint
from shared.contracts.topics import dead_letter_topic
from shared.db import driver_connection
from shared.errors import PoisonEvent, is_transient
from shared.kafka.handlers import BatchContext, HandlerRegistry
from shared.kafka.membership import GroupMembership
from shared.outbox import OutboxMessage, OutboxWriter
from shared.telemetry import (
    BATCH_SECONDS,
    CLIENT_REBUILDS,
    CONSUMER_LAG,
    EVENTS_APPLIED,
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
    EVENTS_DUPLICATE,
    TRANSIENT_RETRIES,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Record: TypeAlias = ConsumerRecord[bytes, bytes]
MAX_HANDLER_FAILURES = 3  # an event whose handler fails this often, alone, is dead-lettered
# Messages decoded (or freed) between two yields to the event loop in the poll ahead:
# ~1.2 ms of CPU, the longest the batch being applied waits once its driver's reply is
# in. 100 against 250 and 500: `python -m bench foundation`, no-op steady rate.
DECODE_SLICE = 100


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Incoming:
    """One consumed message and what decoding made of it."""

    record: Record
    event: EventEnvelope | None = None
    fingerprint: bytes = b""
    poison: tuple[str, str] | None = None  # (code, message)
    duplicate: bool = False


class HandlerFailure(Exception):
    """A handler raised a non-transient error while applying the events at `indexes`."""

    def __init__(self, indexes: list[int], cause: Exception) -> None:
        super().__init__(repr(cause))
        self.indexes = indexes
        self.cause = cause


@dataclass
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0


# One statement per batch, in id order (index pages are touched in order and concurrent
# consumers lock alike), answering with the ids it did NOT insert because they were
# recorded before: usually none, so no row per event comes back (~3 µs per event less
# than returning every inserted id, `python -m bench foundation`).
_RECORD_PROCESSED = sa.text(
    """
WITH incoming AS (
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:fps AS bytea[]), CAST(:topics AS text[]),
                         CAST(:parts AS integer[]), CAST(:offs AS bigint[]))
        AS t(event_id, fingerprint, topic, partition, "offset")
), inserted AS (
    INSERT INTO processed_events (event_id, fingerprint, topic, partition, "offset")
    SELECT * FROM incoming ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
)
SELECT array(SELECT event_id FROM incoming EXCEPT SELECT event_id FROM inserted)
"""
)
_PROCESSED_COLUMNS = ["event_id", "fingerprint", "topic", "partition", "offset"]
_SEEN_FINGERPRINTS = sa.text(
    "SELECT event_id, fingerprint FROM processed_events WHERE event_id = ANY(CAST(:ids AS uuid[]))"
)
_RECORD_DEAD_LETTERS = sa.text(
    'INSERT INTO dead_letters (topic, partition, "offset", error_code, error_message, event_id) '
    "SELECT * FROM unnest(CAST(:topics AS text[]), CAST(:parts AS integer[]),"
    " CAST(:offs AS bigint[]), CAST(:codes AS text[]), CAST(:msgs AS text[]),"
    " CAST(:ids AS text[])) "
    'ON CONFLICT DO NOTHING RETURNING topic, partition, "offset"'
)


def decode(record: Record) -> Incoming:
    """Decode and validate one message; never raises."""
    item = Incoming(record)
    try:
        document = _parse(record.value)
        item.fingerprint = document_fingerprint(document)
        item.event = decode_document(document)
    except ContractError as exc:
        item.poison = (exc.code, exc.message)
    return item


def decode_batch(batch: dict[TopicPartition, list[Record]]) -> list[Incoming]:
    """Every message of a batch decoded, in partition then offset order."""
    return decode_records([r for records in batch.values() for r in records])


def decode_records(records: Sequence[Record]) -> list[Incoming]:
    """`records` decoded, in order; the collector is paused meanwhile (see
    `cyclic_gc_paused`: the decoded events live until their batch commits), and what it
    tracks is then frozen (see `CollectorSweep`)."""
    with cyclic_gc_paused():
        items = [decode(r) for r in records]
        gc.freeze()
        return items


async def decode_in_slices(batch: dict[TopicPartition, list[Record]]) -> list[Incoming]:
    """`decode_batch`, yielding to the event loop every `DECODE_SLICE` messages, so that
    a batch being applied meanwhile gets on with its statements as soon as their replies
    are in (decoding is pure CPU: done in one go, it would hold the apply up instead of
    filling its waits)."""
    records = [r for records in batch.values() for r in records]
    items: list[Incoming] = []
    for start in range(0, len(records), DECODE_SLICE):
        if start:
            await asyncio.sleep(0)
        items.extend(decode_records(records[start : start + DECODE_SLICE]))
    return items


async def _release(polled: Polled) -> None:
    """Free a batch done with, `DECODE_SLICE` events at a time: deallocating its events
    costs ~2.4 µs each, which in one go would hold up the batch being applied."""
    polled.batch.clear()
    items = polled.items
    while items:
        del items[-DECODE_SLICE:]
        await asyncio.sleep(0)


@dataclass(slots=True)
class Polled:
    """One `getmany` batch, decoded and deduplicated within itself, and the assignment
    changes seen before it was polled."""

    batch: dict[TopicPartition, list[Record]]
    items: list[Incoming]
    rebalances: int


def _parse(value: bytes | None) -> dict[str, Any]:
    if value is None:
        raise ContractError("not_json", "message has no value")
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ContractError("not_json", f"message is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ContractError("schema_violation", "an event must be a JSON object")
    return document


async def _copy_processed(conn: AsyncConnection, chosen: Sequence[Incoming]) -> bool:
    """Record every event of `chosen` as processed by one binary COPY, in a savepoint; or,
    when one of them was recorded before (a replay, or another owner of the partition in
    a rebalance), none of them (False: `_RECORD_PROCESSED` then sorts them out).

    Usually none was, and the COPY costs PostgreSQL and the driver half what the statement
    does for the same rows: 6.0 against 12.1 µs per event (median of 30 batches of 8,000,
    alternated, this machine), on the path every batch waits for. Rows go in id order, as
    the statement's. The savepoint is also what begins the batch's transaction (SQLAlchemy
    begins it lazily, on its first statement): a COPY sent first would run, and commit,
    on its own.
    """
    records = sorted(
        (
            (_event_id(it), it.fingerprint, it.record.topic, it.record.partition, it.record.offset)
            for it in chosen
        ),
        key=_by_event_id,
    )
    try:
        async with conn.begin_nested():
            driver = await driver_connection(conn)
            await driver.copy_records_to_table(
                "processed_events", records=records, columns=_PROCESSED_COLUMNS
            )
    except asyncpg.UniqueViolationError:
        return False
    return True


def _event_id(item: Incoming) -> uuid.UUID:
    return item.event.event_id  # type: ignore[union-attr]  # only decoded events get here


def _by_event_id(record: tuple[Any, ...]) -> int:
    event_id: uuid.UUID = record[0]
    return event_id.int  # PostgreSQL orders uuids as their 128-bit integers


def dedupe_within_batch(items: Sequence[Incoming]) -> None:
    """Mark every copy of an event id after its first in the batch as a duplicate.

    Whether a copy is a harmless replay or a conflicting reuse of the id is decided
    later against the authoritative content (stored, or the first copy if new).
    """
    seen: set[int] = set()  # the ids' integers: hashing a UUID object runs Python code
    for item in items:
        if item.event is None:
            continue
        key = item.event.event_id.int
        if key in seen:
            item.duplicate = True
        seen.add(key)


def _event_id_text(item: Incoming) -> str | None:
    return str(item.event.event_id) if item.event is not None else None


def _conflict_message(event_id: uuid.UUID) -> str:
    return f"event_id {event_id} was already used for an event with different content"


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:1000]


class BatchApplier:
    """Applies one decoded batch inside one transaction (no Kafka I/O here)."""

    def __init__(self, group_id: str, registry: HandlerRegistry, clock: Clock) -> None:
        self.group_id = group_id
        self.registry = registry
        self.clock = clock
        self.dlq_topic = dead_letter_topic(group_id)

    async def apply(
        self,
        conn: AsyncConnection,
        items: Sequence[Incoming],
        excluded: dict[int, tuple[str, str]],
        singles: bool,
    ) -> BatchOutcome:
        outcome = BatchOutcome()
        candidates = [
            i
            for i, it in enumerate(items)
            if it.event is not None and it.poison is None and not it.duplicate and i not in excluded
        ]
        new = await self._record_processed(conn, items, candidates)
        conflicts = await self._conflicts(conn, items, candidates, new)
        copies = sum(1 for i, it in enumerate(items) if it.duplicate and i not in conflicts)
        outcome.duplicates = (
            copies + len(candidates) - len(new) - len([i for i in candidates if i in conflicts])
        )
        outbox = OutboxWriter()
        ctx = BatchContext(conn=conn, outbox=outbox, now=self.clock())
        await self._dispatch(ctx, items, [i for i in candidates if i in new], singles)
        outcome.applied = len(new)
        poison = {i: it.poison for i, it in enumerate(items) if it.poison is not None}
        poison.update(excluded)
        poison.update(conflicts)
        outcome.dead_lettered = await self._dead_letter(conn, outbox, items, poison)
        await outbox.flush(conn)
        return outcome

    async def _record_processed(
        self, conn: AsyncConnection, items: Sequence[Incoming], indexes: list[int]
    ) -> set[int]:
        """Record the events at `indexes` as processed; the indexes of those that were not
        recorded before (the ones to apply)."""
        if not indexes:
            return set()
        # The batch's first statement goes through SQLAlchemy, not the driver: a connection
        # lost mid-statement must reach its error handling, which invalidates the
        # connection (the driver alone left it pooled and the consumer hung after a
        # PostgreSQL restart, tests/integration/foundation/test_faults.py). So does the
        # rollback to the savepoint when the COPY, which runs on the driver, fails.
        chosen = [items[i] for i in indexes]
        if await _copy_processed(conn, chosen):
            return set(indexes)
        already: list[uuid.UUID] = (
            await conn.execute(
                _RECORD_PROCESSED,
                {
                    "ids": [it.event.event_id for it in chosen if it.event],
                    "fps": [it.fingerprint for it in chosen],
                    "topics": [it.record.topic for it in chosen],
                    "parts": [it.record.partition for it in chosen],
                    "offs": [it.record.offset for it in chosen],
                },
            )
        ).scalar_one()
        if not already:
            return set(indexes)
        seen = {event_id.int for event_id in already}
        return {i for i in indexes if items[i].event.event_id.int not in seen}  # type: ignore[union-attr]

    async def _conflicts(
        self, conn: AsyncConnection, items: Sequence[Incoming], candidates: list[int], new: set[int]
    ) -> dict[int, tuple[str, str]]:
        """Copies whose content differs from the authoritative content of their id."""
        known = [items[i].event.event_id for i in candidates if i not in new]  # type: ignore[union-attr]
        if not known and not any(item.duplicate for item in items):
            # Every event of the batch is its id's only copy and was just recorded with
            # its own fingerprint: nothing can disagree.
            return {}
        authority = {
            items[i].event.event_id: items[i].fingerprint  # type: ignore[union-attr]
            for i in new
        }
        if known:
            authority.update((await conn.execute(_SEEN_FINGERPRINTS, {"ids": known})).all())
        found: dict[int, tuple[str, str]] = {}
        for i, item in enumerate(items):
            if item.event is None or item.poison is not None:
                continue
            stored = authority.get(item.event.event_id)
            if stored is not None and stored != item.fingerprint:
                found[i] = ("payload_conflict", _conflict_message(item.event.event_id))
        return found

    async def _dispatch(
        self, ctx: BatchContext, items: Sequence[Incoming], indexes: list[int], singles: bool
    ) -> None:
        for run in _runs_by_type(items, indexes, singles):
            handler = self.registry.handlers.get(run[0][1])
            if handler is None:
                continue  # a contract type this service has no business with
            events = [items[i].event for i, _ in run]
            try:
                await handler(ctx, events)
            except Exception as exc:
                if is_transient(exc):
                    raise
                raise HandlerFailure([i for i, _ in run], exc) from exc

    async def _dead_letter(
        self,
        conn: AsyncConnection,
        outbox: OutboxWriter,
        items: Sequence[Incoming],
        poison: dict[int, tuple[str, str]],
    ) -> int:
        if not poison:
            return 0
        order = sorted(poison)
        result = await conn.execute(
            _RECORD_DEAD_LETTERS,
            {
                "topics": [items[i].record.topic for i in order],
                "parts": [items[i].record.partition for i in order],
                "offs": [items[i].record.offset for i in order],
                "codes": [poison[i][0] for i in order],
                "msgs": [poison[i][1] for i in order],
                "ids": [_event_id_text(items[i]) for i in order],
            },
        )
        fresh = {tuple(row) for row in result}
        for i in order:
            record = items[i].record
            if (record.topic, record.partition, record.offset) in fresh:
                outbox.emit_raw(self._dlq_message(record, *poison[i]))
                EVENTS_DEAD_LETTERED.labels(self.group_id, poison[i][0]).inc()
        return len(fresh)

    def _dlq_message(self, record: Record, code: str, message: str) -> OutboxMessage:
        return OutboxMessage(
            topic=self.dlq_topic,
            key=record.key,
            value=record.value or b"",
            headers=[
                ("dlq.error.code", code),
                ("dlq.error.message", message),
                ("dlq.original.topic", record.topic),
                ("dlq.original.partition", str(record.partition)),
                ("dlq.original.offset", str(record.offset)),
                ("dlq.group", self.group_id),
            ],
        )


def _runs_by_type(
    items: Sequence[Incoming], indexes: list[int], singles: bool
) -> list[list[tuple[int, str]]]:
    """Consecutive events of one type form a run (order is kept across runs)."""
    runs: list[list[tuple[int, str]]] = []
    for i in indexes:
        event = items[i].event
        assert event is not None
        if runs and not singles and runs[-1][-1][1] == event.type:
            runs[-1].append((i, event.type))
        else:
            runs.append([(i, event.type)])
    return runs


class _FinishBatchOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Waits for the batch in flight before partitions are taken away, so offsets
    of revoked partitions are never committed by this member afterwards; counts the
    assignment's changes, so a batch polled ahead of one is never applied."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self.lock = lock
        self.rebalances = 0

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.lock:
            self.rebalances += 1
            log.info("partitions revoked: %s", sorted(str(tp) for tp in revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.rebalances += 1
        log.info("partitions assigned: %s", sorted(str(tp) for tp in assigned))


def leave_group_in_every_generation(consumer: AIOKafkaConsumer) -> None:
    """Make `consumer.stop()` send LeaveGroup also when the group's generation is 0.

    aiokafka leaves only when generation > 0 (Apache Kafka's first generation is 1).
    Tansu numbers its first generation 0, so without this a member stopped before the
    first rebalance left silently and its partitions waited out the session timeout.
    A static member (group.instance.id) never leaves: its partitions wait for it.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None:
        return
    original = coordinator._maybe_leave_group

    async def leave() -> None:
        if (
            coordinator.generation == 0
            and coordinator._group_instance_id is None
            and coordinator.member_id
        ):
            try:
                await coordinator._send_req(
                    LeaveGroupRequest(coordinator.group_id, coordinator.member_id)
                )
            except KafkaError as exc:
                log.warning("LeaveGroup (generation 0) failed: %s", exc)
            else:
                log.info("%s: left the group (generation 0)", coordinator.group_id)
            coordinator.reset_generation()
            return
        await original()

    coordinator._maybe_leave_group = leave


class CollectorSweep:
    """Keeps decoded batches out of the cyclic collector's scans, and still collects.

    A decoded purchase is ~14 objects the collector tracks (models, their dicts and
    field sets, ids, records), acyclic, alive until the poll after its batch frees it: two
    batches of 4,000 are ~80k of them, and every young collection scanned them all and
    freed nothing: 16 ms per batch, 4 µs per purchase (`python -m bench points`, a
    `gc.callbacks` probe). So `decode_records` freezes what the collector tracks
    (`gc.freeze`: a list splice, whatever its length), and reference counting frees the
    events as before. What the freeze also takes is cyclic garbage made since the last
    one (~45 objects per batch in that probe, plus whatever the process's HTTP side
    makes): it waits here, for one full collection every `every` seconds (~60-100 ms
    for a service's whole heap), and when the consumer stops.
    """

    def __init__(self, every: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self.due = clock() + every

    def collect_if_due(self) -> bool:
        """Collect everything, frozen included, if the sweep is due; True if it ran."""
        now = self.clock()
        if now < self.due:
            return False
        self.due = now + self.every
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        return True

    @staticmethod
    def release() -> None:
        """Give what the freezes took back to the collector (the consumer stops)."""
        gc.unfreeze()


def _tune_garbage_collector() -> None:
    """A batch allocates tens of thousands of short-lived objects that live until it
    commits; with default thresholds that triggers a full collection every batch or two
    (a fifth of consumer time, measured by `make bench`). Freeze what start-up built
    and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is decoded and applied.

    A batch keeps tens of thousands of container objects alive until it commits (its
    decoded events; for points accrual the accounts, lots, orders, ledger lines and
    outgoing events, ~8 more per purchase), and every collection it triggered examined
    them again and freed nothing: `python -m bench points --events 60000` spent 1.8 s in
    the collector, 0.2-0.3 s with the pause. Reference counting still frees everything
    acyclic at once, and the collector runs once the attempt is over (a retry's wait runs
    with it on). A collector paused by someone else stays paused.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class BrokenClient(Exception):
    """The Kafka client can no longer deliver messages; a new one must replace it."""


# A broken client is replaced after 1 s, then 2, 4 ... at most 30 s apart.
REBUILD_FIRST_WAIT = 1.0
REBUILD_MAX_WAIT = 30.0
# How long a client gets to leave its group when it is stopped (its requests time out
# after 40 s each otherwise: a broken one would hold the stop or the rebuild that long).
CLIENT_STOP_SECONDS = 15.0


def _check_fetch_routine(consumer: AIOKafkaConsumer) -> None:
    """Raise `BrokenClient` if the client's background fetch routine has ended.

    aiokafka fetches in one background task per consumer; if that task ends on an error
    it did not expect, it logs "Unexpected error in fetcher routine" and `getmany`
    returns nothing ever after, without raising: the consumer would sit idle with its
    partitions assigned, forever. Its task is `Fetcher.error_future` (aiokafka
    0.11-0.14); a client without one is not checked.
    """
    routine = getattr(getattr(consumer, "_fetcher", None), "error_future", None)
    if isinstance(routine, asyncio.Future) and routine.done():
        error = None if routine.cancelled() else routine.exception()
        raise BrokenClient(f"its fetch routine ended: {error!r}") from error


class IdleWatch:
    """Tells a client that stopped fetching from one with nothing to fetch.

    An idle consumer polls empty batches; every `every` seconds of that, it asks the
    broker how many messages wait past its positions. A working client fetches a
    message within a poll or two of its arrival, which ends the idle spell; so messages
    waiting at two checks in a row, with nothing polled between them, mean the client
    no longer fetches (whatever the cause: the routine check above knows one). A check
    that gets no answer (broker down, a rebalance) is no verdict either way.
    """

    __slots__ = ("clock", "every", "since", "strikes")

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self.since: float | None = None  # when the idle spell began, or the last check
        self.strikes = 0

    def busy(self) -> None:
        """A poll returned messages."""
        self.since = None
        self.strikes = 0

    def due(self) -> bool:
        """An empty poll: True when a check is due."""
        now = self.clock()
        if self.since is None:
            self.since = now
            return False
        if now - self.since < self.every:
            return False
        self.since = now
        return True

    def judge(self, waiting: int | None) -> bool:
        """The check's answer (None: none); True when the client must be replaced."""
        if waiting is None:
            return False
        self.strikes = self.strikes + 1 if waiting > 0 else 0
        return self.strikes >= 2


# How long one idle check may wait for the broker's answers.
IDLE_QUERY_SECONDS = 10.0


async def messages_waiting(consumer: AIOKafkaConsumer) -> int | None:
    """Messages in the assigned partitions past the consumer's positions; None when the
    broker or the group cannot say now."""
    assigned = list(consumer.assignment())
    if not assigned:
        return 0
    try:
        async with asyncio.timeout(IDLE_QUERY_SECONDS):
            positions = {tp: await consumer.position(tp) for tp in assigned}
            ends = await consumer.end_offsets(assigned)
    except Exception as exc:  # a timeout, the broker's error, a partition revoked meanwhile
        log.info("idle check without an answer: %r", exc)
        return None
    return sum(max(int(ends[tp]) - int(positions[tp]), 0) for tp in assigned)


async def _forget(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for it, whatever it ends with (a poll ahead at a stop)."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled() and task.exception() is not None:
        log.info("a poll ahead ended with %r at the stop", task.exception())


class EventConsumer:
    """Consumes `topics` as `group_id` and applies events exactly once to `engine`."""

    def __init__(
        self,
        *,
        group_id: str,
        topics: Sequence[str],
        bootstrap_servers: str,
        engine: AsyncEngine,
        registry: HandlerRegistry,
        clock: Clock = utc_now,
        max_batch: int = 2000,
        poll_timeout_ms: int = 200,
        after_commit: Callable[[], None] | None = None,
        consumer_options: dict[str, Any] | None = None,
        membership: GroupMembership | None = None,
        stall_check_seconds: float = 30.0,
    ) -> None:
        self.group_id = group_id
        self.topics = list(topics)
        self.engine = engine
        self.applier = BatchApplier(group_id, registry, clock)
        self.max_batch = max_batch
        self.poll_timeout_ms = poll_timeout_ms
        self.after_commit = after_commit
        self._lock = asyncio.Lock()
        self._listener = _FinishBatchOnRevoke(self._lock)
        self._stopping = asyncio.Event()
        self._ahead: Polled | None = None  # the batch `process` is given, decoded already
        self.sweep = CollectorSweep()
        self.membership = membership or GroupMembership.from_environment()
        self._options = self.membership.consumer_options(group_id)
        self._options.update(consumer_options or {})
        self._bootstrap_servers = bootstrap_servers
        self.consumer = self._kafka_consumer()
        self.rebuilds = 0  # Kafka clients replaced after they broke (see `run`)
        self._idle = IdleWatch(stall_check_seconds)

    def _kafka_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{self.group_id}-{uuid.uuid4().hex[:8]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.max_batch,
            **self._options,
        )

    def request_stop(self) -> None:
        """Finish the batch in flight, commit it, then leave the group (SIGTERM path)."""
        self._stopping.set()

    async def run(self) -> None:
        """Poll, apply and commit batches until `request_stop`.

        While batch N is applied (its statements' round trips, COMMIT, the offset
        commit) batch N+1 is polled and decoded by a task of its own, so that the waits
        are filled with work. What that never changes: batches are applied one at a
        time, in poll order, and offsets are committed only after their transaction.
        A batch polled ahead is applied only if the assignment did not change since its
        poll began; otherwise it is dropped and its partitions still ours are rewound
        to its first offsets (a rebalance resets positions to the committed offsets
        anyway), so a revoked partition's batch is never applied here and no message
        is skipped. A stop requested while a batch is applied applies none polled
        ahead of it: the next owner reads it.

        A Kafka client that breaks (`BrokenClient`: its fetch routine ended, `getmany`
        raised, or it polls nothing while messages wait, see `IdleWatch`) is stopped and
        replaced by a new one, after a wait that doubles up to `REBUILD_MAX_WAIT`: the new
        member rejoins the group and reads from the committed offsets, and what was
        applied but not committed is a duplicate `processed_events` turns into a no-op.
        Every other error ends the run, as before (the worker board reports it).
        """
        _tune_garbage_collector()
        wait = REBUILD_FIRST_WAIT
        try:
            while True:
                started = time.monotonic()
                try:
                    await self._consume()
                    return
                except BrokenClient as broken:
                    if time.monotonic() - started > 2 * REBUILD_MAX_WAIT:
                        wait = REBUILD_FIRST_WAIT  # it worked a while: not the same fault
                    log.error(
                        "%s: Kafka client broken, replacing it in %.1fs: %s",
                        self.group_id,
                        wait,
                        broken,
                        exc_info=broken.__cause__,
                    )
                await self._sleep_unless_stopping(wait)
                if self._stopping.is_set():
                    return
                wait = min(wait * 2, REBUILD_MAX_WAIT)
                self.consumer = self._kafka_consumer()
                self.rebuilds += 1
                CLIENT_REBUILDS.labels(self.group_id).inc()
        finally:
            self.sweep.release()

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def _consume(self) -> None:
        """`run`'s loop with one Kafka client, stopped (the group left) however it ends."""
        self.consumer.subscribe(self.topics, listener=self._listener)
        await self.consumer.start()
        leave_group_in_every_generation(self.consumer)
        self._idle.busy()  # a new client: no idle spell yet
        ahead: asyncio.Task[Polled] | None = None
        applied: Polled | None = None  # the last batch applied: the next poll frees it
        try:
            while not self._stopping.is_set():
                if ahead is None:
                    ahead, applied = asyncio.create_task(self._poll_ahead(applied)), None
                polled = await ahead
                ahead = None
                self.sweep.collect_if_due()  # also when idle: what was frozen is collected
                if not polled.batch:
                    await self._check_idle()
                    continue
                self._idle.busy()
                async with self._lock:
                    if polled.rebalances != self._listener.rebalances:
                        self._drop(polled)
                        continue
                    # Batch N+1 polled and decoded, batch N-1 freed, while N is applied.
                    ahead, applied = asyncio.create_task(self._poll_ahead(applied)), None
                    self._ahead = polled
                    await self.process(polled.batch)
                    applied = polled
        finally:
            self._ahead = None
            if ahead is not None:
                await _forget(ahead)
            await self._stop_client()

    async def _check_idle(self) -> None:
        """Raise `BrokenClient` when two checks `IdleWatch.every` apart, with nothing
        polled between them, both find messages waiting past our positions."""
        if not self._idle.due():
            return
        waiting = await messages_waiting(self.consumer)
        if self._idle.judge(waiting):
            raise BrokenClient(
                f"nothing polled for {2 * self._idle.every:.0f}s while {waiting} messages"
                " wait in its partitions"
            )

    async def _stop_client(self) -> None:
        """Stop the Kafka client: it leaves the group, so the next owner starts at our
        commit. A broken client gets `CLIENT_STOP_SECONDS` to do so, then is dropped."""
        try:
            async with asyncio.timeout(CLIENT_STOP_SECONDS):
                await self.consumer.stop()
        except TimeoutError:
            log.warning("%s: Kafka client did not stop in %ss", self.group_id, CLIENT_STOP_SECONDS)

    async def _poll(self, applied: Polled | None) -> Polled:
        """The next batch, decoded; first frees `applied`, a batch done with."""
        if applied is not None:
            await _release(applied)
        rebalances = self._listener.rebalances
        try:
            batch = await self.consumer.getmany(
                timeout_ms=self.poll_timeout_ms, max_records=self.max_batch
            )
        except Exception as exc:  # e.g. its group coordination routine's error
            raise BrokenClient(f"getmany raised {exc!r}") from exc
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # this poll is cancelled (a stop)
            # a task of the client's own was cancelled and getmany passed that on
            raise BrokenClient("getmany raised CancelledError") from exc
        if not batch:
            _check_fetch_routine(self.consumer)
        items = await decode_in_slices(batch)
        dedupe_within_batch(items)  # pure: done here, it is off the applying batch's path
        return Polled(batch, items, rebalances)

    def _poll_ahead(self, applied: Polled | None) -> Coroutine[Any, Any, Polled]:
        """`_poll`, run as a task of its own, beside the batch being applied (a method of
        its own so that the bench can time that task)."""
        return self._poll(applied)

    def _drop(self, polled: Polled) -> None:
        """Forget a batch polled before the assignment changed: partitions still ours
        read again from its first message."""
        assigned = self.consumer.assignment()
        for tp, records in polled.batch.items():
            if records and tp in assigned:
                self.consumer.seek(tp, records[0].offset)
        log.info(
            "%s: assignment changed after a batch was polled: %d messages dropped, read again",
            self.group_id,
            sum(len(records) for records in polled.batch.values()),
        )

    async def process(self, batch: dict[TopicPartition, list[Record]]) -> BatchOutcome | None:
        """Apply one batch and commit its offsets; None if abandoned because of a stop."""
        started = time.perf_counter()
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead.batch is batch:
            items = ahead.items  # decoded and deduplicated within the batch by `_poll`
        else:
            items = decode_batch(batch)
            dedupe_within_batch(items)
        EVENTS_CONSUMED.labels(self.group_id).inc(len(items))
        outcome = await self._apply_with_retries(items)
        if outcome is None:
            return None
        await self._commit_offsets(batch)
        BATCH_SECONDS.labels(self.group_id).observe(time.perf_counter() - started)
        EVENTS_APPLIED.labels(self.group_id).inc(outcome.applied)
        EVENTS_DUPLICATE.labels(self.group_id).inc(outcome.duplicates)
        self._record_lag(batch)
        if self.after_commit is not None:
            self.after_commit()
        return outcome

    async def _apply_with_retries(self, items: list[Incoming]) -> BatchOutcome | None:
        excluded: dict[int, tuple[str, str]] = {}
        failures: Counter[int] = Counter()
        singles, delay = False, 0.05
        while True:
            try:
                with cyclic_gc_paused():
                    async with self.engine.begin() as conn:
                        return await self.applier.apply(conn, items, excluded, singles)
            except HandlerFailure as failure:
                singles = self._isolate(failure, items, excluded, failures) or singles
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if self._stopping.is_set():
                    return None  # nothing committed: the next owner gets these offsets
                TRANSIENT_RETRIES.labels(self.group_id).inc()
                log.warning(
                    "%s: transient fault, retrying batch in %.2fs: %s",
                    self.group_id,
                    delay,
                    _short(exc),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    @staticmethod
    def _isolate(
        failure: HandlerFailure,
        items: list[Incoming],
        excluded: dict[int, tuple[str, str]],
        failures: Counter[int],
    ) -> bool:
        """Decide what a handler failure means; True asks for one event per run."""
        cause = failure.cause
        culprit = failure.indexes[0] if len(failure.indexes) == 1 else None
        if isinstance(cause, PoisonEvent):
            named = getattr(cause, "event_id", None)
            for i in failure.indexes:
                event = items[i].event
                if named is not None and event is not None and str(event.event_id) == str(named):
                    culprit = i
            if culprit is not None:
                excluded[culprit] = (cause.code, cause.message)
                return False
            return True
        if culprit is None:
            return True
        failures[culprit] += 1
        log.warning(
            "handler failed on %s (%d/%d): %s",
            items[culprit].record,
            failures[culprit],
            MAX_HANDLER_FAILURES,
            _short(cause),
        )
        if failures[culprit] >= MAX_HANDLER_FAILURES:
            excluded[culprit] = ("handler_failed", _short(cause))
        return True

    async def _commit_offsets(self, batch: dict[TopicPartition, list[Record]]) -> None:
        assigned = self.consumer.assignment()
        offsets = {
            tp: records[-1].offset + 1
            for tp, records in batch.items()
            if records and tp in assigned
        }
        delay = 0.05
        while offsets:
            try:
                await self.consumer.commit(offsets)
                return
            except (CommitFailedError, IllegalStateError) as exc:
                # The group moved on: the new owner re-reads these offsets and the
                # processed-events table turns them into no-ops.
                log.info("%s: offsets not committed after rebalance: %s", self.group_id, exc)
                return
            except Exception as exc:
                if not is_transient(exc) or self._stopping.is_set():
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _record_lag(self, batch: dict[TopicPartition, list[Record]]) -> None:
        lag: Counter[str] = Counter()
        for tp, records in batch.items():
            highwater = self.consumer.highwater(tp)
            if highwater is not None and records:
                lag[tp.topic] += max(highwater - records[-1].offset - 1, 0)
        for topic, value in lag.items():
            CONSUMER_LAG.labels(self.group_id, topic).set(value)
