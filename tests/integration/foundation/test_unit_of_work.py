"""shared.uow.UnitOfWork on a real PostgreSQL (and, for a consumer batch, a real broker): the
data a use case writes and the events it emits commit together or not at all.

The tests use a unit of work the way a service does: a subclass adding a repository built on
`self.conn`, over a table of their own (`uow_notes`), so the chassis is tested without any
service's code."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.pos import PurchaseCompleted
from shared.contracts.registry import decode_event
from shared.db import asyncpg_dsn, create_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.handlers import BatchContext, HandlerRegistry
from shared.outbox import OutboxWriter
from shared.uow import UnitOfWork
from tests.support.counting import publish, purchase, wait_until
from tests.support.dlq import read_topic
from tests.support.infra import Infra
from tests.support.running import running_consumer

pytestmark = pytest.mark.integration

# `note` must be unique by the time the transaction commits (not before): a duplicate makes
# the COMMIT itself fail, after the outbox rows were written in the same transaction.
DDL = (
    "CREATE TABLE uow_notes (customer_id text NOT NULL, note text NOT NULL,"
    " CONSTRAINT uq_uow_notes_note UNIQUE (note) DEFERRABLE INITIALLY DEFERRED)"
)
TOPIC = "uow.notes"
NOON = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


class NoteRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, customer_id: str, note: str) -> None:
        await self.conn.execute(
            sa.text("INSERT INTO uow_notes (customer_id, note) VALUES (:c, :n)"),
            {"c": customer_id, "n": note},
        )


class NotesUnitOfWork(UnitOfWork):
    """What a service's unit of work looks like: the base plus its repositories."""

    def __init__(self, conn: AsyncConnection, outbox: OutboxWriter, now: datetime) -> None:
        super().__init__(conn, outbox, now)
        self.notes = NoteRepository(conn)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now, self.calls = now, 0

    def __call__(self) -> datetime:
        self.calls += 1
        return self.now


class Boom(Exception):
    pass


def event(customer: str) -> PurchaseCompleted:
    decoded = decode_event(purchase(customer))
    assert isinstance(decoded, PurchaseCompleted)
    return decoded


async def _prepared(db_url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        await conn.execute(DDL)
    finally:
        await conn.close()


async def _committed(db_url: str) -> tuple[list[tuple[str, str]], list[tuple[str, bytes, bytes]]]:
    """What another connection sees: the notes, and the outbox rows (topic, key, value)."""
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        notes = await conn.fetch("SELECT customer_id, note FROM uow_notes ORDER BY note")
        rows = await conn.fetch("SELECT topic, key, value FROM outbox ORDER BY id")
    finally:
        await conn.close()
    return (
        [(r["customer_id"], r["note"]) for r in notes],
        [(r["topic"], bytes(r["key"]), bytes(r["value"])) for r in rows],
    )


async def test_begin_commits_the_data_with_the_outbox_rows_of_its_events(points_db: str) -> None:
    await _prepared(points_db)
    engine, clock = create_engine(points_db, pool_size=2), Clock(NOON)
    emitted = [event("ann"), event("bob")]
    try:
        async with NotesUnitOfWork.begin(engine, clock) as uow:
            assert uow.now == NOON and clock.calls == 1, "the unit of work did not take the clock"
            await uow.notes.add("ann", "first")
            await uow.notes.add("bob", "second")
            for each in emitted:
                uow.emit(TOPIC, each)
            assert await _committed(points_db) == ([], []), "visible before the block ended"
    finally:
        await engine.dispose()
    notes, rows = await _committed(points_db)
    assert notes == [("ann", "first"), ("bob", "second")], "the data was not committed"
    assert [(topic, key) for topic, key, _ in rows] == [(TOPIC, b"ann"), (TOPIC, b"bob")], (
        "each event is one outbox row on its topic, keyed by its customer"
    )
    assert [decode_event(value) for _, _, value in rows] == emitted, "the rows are not the events"


@pytest.mark.parametrize("flushed_first", [False, True], ids=["queued", "already-flushed"])
async def test_an_error_in_the_block_rolls_back_the_data_and_the_events(
    points_db: str, flushed_first: bool
) -> None:
    await _prepared(points_db)
    engine = create_engine(points_db, pool_size=2)
    try:
        with pytest.raises(Boom):
            async with NotesUnitOfWork.begin(engine, Clock(NOON)) as uow:
                await uow.notes.add("ann", "first")
                uow.emit(TOPIC, event("ann"))
                if flushed_first:  # the outbox rows are in the transaction already
                    assert await uow.outbox.flush(uow.conn) == 1
                raise Boom("the use case failed half-way")
        # The same engine still works, and nothing of the failed unit is left behind.
        async with NotesUnitOfWork.begin(engine, Clock(NOON)) as uow:
            await uow.notes.add("cyd", "after")
    finally:
        await engine.dispose()
    assert await _committed(points_db) == ([("cyd", "after")], []), (
        "a failed unit of work left data or events behind"
    )


async def test_a_failed_commit_keeps_neither_the_data_nor_the_events(points_db: str) -> None:
    await _prepared(points_db)
    engine = create_engine(points_db, pool_size=2)
    try:
        async with NotesUnitOfWork.begin(engine, Clock(NOON)) as uow:
            await uow.notes.add("ann", "taken")
        with pytest.raises(sa.exc.IntegrityError):
            async with NotesUnitOfWork.begin(engine, Clock(NOON)) as uow:
                await uow.notes.add("bob", "fine")
                await uow.notes.add("bob", "taken")  # refused only at COMMIT (deferred)
                uow.emit(TOPIC, event("bob"))
    finally:
        await engine.dispose()
    assert await _committed(points_db) == ([("ann", "taken")], []), (
        "the outbox rows of a transaction that failed to commit were kept"
    )


async def test_of_batch_works_in_the_batch_transaction_and_the_runtime_commits_it(
    infra: Infra, points_db: str, unique: str
) -> None:
    await _prepared(points_db)
    source, echoes, group = f"uow-in.{unique}", f"uow-out.{unique}", f"g-uow-{unique}"
    await ensure_topics(infra.bootstrap_servers, [source, echoes], partitions=2)
    seen_in_handler: list[dict[str, Any]] = []
    registry = HandlerRegistry()

    @registry.batch("purchase.completed")
    async def note_purchases(ctx: BatchContext, events: Sequence[PurchaseCompleted]) -> None:
        uow = NotesUnitOfWork.of_batch(ctx)
        mine = [(each.customer_id, f"bought {each.data.order_id}") for each in events]
        for (customer, note), each in zip(mine, events, strict=True):
            await uow.notes.add(customer, note)
            uow.emit(echoes, each)
        notes_outside, _ = await _committed(points_db)
        seen_in_handler.append(
            {
                "same_transaction": uow.conn is ctx.conn and uow.outbox is ctx.outbox,
                "now": uow.now == ctx.now,
                "in_transaction": uow.conn.in_transaction(),
                "queued": len(ctx.outbox.pending),
                "visible_outside": set(mine) & set(notes_outside),
                "events": len(events),
            }
        )

    sent = [purchase(f"c{i}") for i in range(5)]
    await publish(infra.bootstrap_servers, source, sent)

    async def all_noted() -> object:
        notes, _ = await _committed(points_db)
        return len(notes) == len(sent) or f"{len(notes)}/{len(sent)} noted"

    async with running_consumer(infra.bootstrap_servers, points_db, group, [source], registry):
        await wait_until(all_noted)
        echoed = await read_topic(infra.bootstrap_servers, echoes, expected=len(sent))

    assert seen_in_handler, "the handler never ran"
    assert sum(s["events"] for s in seen_in_handler) == len(sent)
    for seen in seen_in_handler:
        assert seen["same_transaction"] and seen["now"], "of_batch is not the batch's own unit"
        assert seen["in_transaction"], "the unit of work ended the batch's transaction"
        assert seen["queued"] >= seen["events"], "the events skipped the batch's outbox"
        assert seen["visible_outside"] == set(), (
            "of_batch committed: the batch's writes were visible before the runtime committed"
        )
    notes, _ = await _committed(points_db)
    assert sorted(c for c, _ in notes) == sorted(e["customer_id"] for e in sent)
    assert sorted(uuid.UUID(str(decode_event(r.value or b"").event_id)) for r in echoed) == sorted(
        uuid.UUID(e["event_id"]) for e in sent
    ), "the events emitted in the batch did not reach their topic through the outbox"
