"""Foundation section: the consumer runtime against the raw broker and raw PostgreSQL.

On the same N pre-produced purchase.completed events (keyed by customer, 8 partitions):
  1. raw consume: a bare AIOKafkaConsumer, getmany, no decoding;
  2. raw insert: asyncpg, one row per event, batches as large as the runtime's,
     one transaction per batch; unnest (one statement per batch) and executemany;
  3. the runtime (EventConsumer) with a no-op handler: decode, validate, dedupe
     table, offset commit;
  4. the runtime with a handler inserting one row per event.
A runtime run is timed from the consumer's start until every event's batch has
committed to PostgreSQL and its offsets to the broker; its start to first applied batch
is printed split into client start, group join, first fetch and first apply
(bench.startup).
Targets (issue 12; reported, never failing): no-op handler >= 30,000 events/s steady,
one-row handler >= 20,000 events/s steady.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.infra import BenchInfra
from bench.phases import POLL, PhaseClock, print_phases, runtime_phases
from bench.report import (
    Progress,
    Rate,
    garbage_collection_time,
    print_table,
    ratio_text,
    target_line,
)
from bench.startup import StartupTimeline
from bench.workload import Purchases, make_purchases, produce
from shared.contracts.pos import PurchaseCompleted
from shared.db import asyncpg_dsn, create_engine
from shared.kafka.handlers import BatchContext, HandlerRegistry
from shared.kafka.runtime import BatchOutcome, EventConsumer, Record

SECTION = "foundation"
PARTITIONS = 8
BATCH = 2000  # EventConsumer's default max_batch; raw baselines use the same size
TARGET_NOOP_EPS = 30_000  # issue 12: steady rate of the runtime with a no-op handler
TARGET_ONE_ROW_EPS = 20_000  # issue 12: steady rate with a one-row handler
RUN_TIMEOUT = 240.0

ROWS_DDL = (
    "CREATE TABLE {table} (event_id uuid NOT NULL, customer_id text NOT NULL,"
    " amount_minor bigint NOT NULL)"
)
_UNNEST = (
    "INSERT INTO {table} (event_id, customer_id, amount_minor) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[])"
)
_VALUES = "INSERT INTO {table} (event_id, customer_id, amount_minor) VALUES ($1, $2, $3)"
_HANDLER_INSERT = sa.text(
    "INSERT INTO purchase_rows (event_id, customer_id, amount_minor) "
    "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:customers AS text[]),"
    " CAST(:amounts AS bigint[]))"
)


# -- 1. raw broker consume ----------------------------------------------------
async def raw_consume(bootstrap: str, topic: str, count: int) -> Rate:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=BATCH,
    )
    progress = Progress(count)
    await consumer.start()
    try:
        while not progress.done:
            batch = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            if batch:
                progress.add(sum(len(records) for records in batch.values()))
    finally:
        await consumer.stop()
    _expect(progress.count, count, f"events read from {topic}")
    return progress.rate("raw broker consume (getmany, no decode)")


# -- 2. raw PostgreSQL insert -------------------------------------------------
async def raw_insert(url: str, purchases: Purchases, form: str) -> Rate:
    table = f"raw_rows_{form}"
    chunks = _chunks(purchases, BATCH)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(ROWS_DDL.format(table=table))
        progress = Progress(len(purchases))
        for ids, customers, amounts in chunks:
            async with conn.transaction():
                if form == "unnest":
                    await conn.execute(_UNNEST.format(table=table), ids, customers, amounts)
                else:
                    rows = list(zip(ids, customers, amounts, strict=True))
                    await conn.executemany(_VALUES.format(table=table), rows)
            progress.add(len(ids))
        stored = await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
    finally:
        await conn.close()
    _expect(stored, len(purchases), f"raw insert {form}")
    label = "1 INSERT..unnest" if form == "unnest" else "executemany, 1 row/stmt"
    return progress.rate(f"raw PG insert ({label}, 1 tx/batch)")


def _chunks(purchases: Purchases, size: int) -> list[tuple[list[uuid.UUID], list[str], list[int]]]:
    return [
        (
            purchases.event_ids[i : i + size],
            purchases.customers[i : i + size],
            purchases.amounts_minor[i : i + size],
        )
        for i in range(0, len(purchases), size)
    ]


# -- 3 and 4. the runtime -----------------------------------------------------
class TimedConsumer(EventConsumer):
    """EventConsumer that reports each batch once its offsets are committed, and its
    start to first applied batch on `startup`."""

    def __init__(self, progress: Progress, broker: str, **options: Any) -> None:
        super().__init__(**options)
        self.progress = progress
        self.applied = 0
        self.batches = 0
        self.startup = StartupTimeline(broker)
        self.startup.watch(self.consumer)

    async def run(self) -> None:
        self.startup.start()
        await super().run()

    async def process(self, batch: dict[TopicPartition, list[Record]]) -> BatchOutcome | None:
        self.startup.batch_received()
        outcome = await super().process(batch)
        if outcome is not None:
            self.startup.batch_applied()
            self.applied += outcome.applied
            self.batches += 1
            self.progress.add(sum(len(records) for records in batch.values()))
        return outcome


def noop_registry() -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.batch("purchase.completed")
    async def ignore_purchases(ctx: BatchContext, events: Sequence[PurchaseCompleted]) -> None:
        return None

    return registry


def one_row_registry() -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.batch("purchase.completed")
    async def record_purchases(ctx: BatchContext, events: Sequence[PurchaseCompleted]) -> None:
        await ctx.conn.execute(
            _HANDLER_INSERT,
            {
                "ids": [e.event_id for e in events],
                "customers": [e.customer_id for e in events],
                "amounts": [e.data.amount_minor for e in events],
            },
        )

    return registry


async def runtime_run(
    infra: BenchInfra, topic: str, count: int, registry: HandlerRegistry, name: str
) -> tuple[Rate, PhaseClock, StartupTimeline]:
    url = await infra.fresh_database("points")
    conn = await asyncpg.connect(asyncpg_dsn(url))
    await conn.execute(ROWS_DDL.format(table="purchase_rows"))
    engine = create_engine(url)
    progress = Progress(count)
    consumer = TimedConsumer(
        progress,
        infra.broker,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        bootstrap_servers=infra.bootstrap_servers,
        engine=engine,
        registry=registry,
        max_batch=BATCH,
    )
    clock = PhaseClock()
    before, after = runtime_phases()
    try:
        with garbage_collection_time() as gc_seconds, clock.patch(before + after):
            with clock.process():
                progress.restart()
                task = asyncio.create_task(clock.task(consumer.run(), POLL))
                await _wait_done(progress, task)
            consumer.request_stop()
            await task
        processed = await conn.fetchval("SELECT count(*) FROM processed_events")
        rows = await conn.fetchval("SELECT count(*) FROM purchase_rows")
    finally:
        await engine.dispose()
        await conn.close()
    _expect(processed, count, f"{name}: processed_events")
    _expect(consumer.applied, count, f"{name}: events applied")
    mean = count / max(consumer.batches, 1)
    note = f"{consumer.batches} batches of {mean:,.0f}; {rows} rows; gc {gc_seconds[0]:.1f}s"
    return progress.rate(name, note=note), clock, consumer.startup


async def _wait_done(progress: Progress, task: asyncio.Task[None]) -> None:
    deadline = asyncio.get_running_loop().time() + RUN_TIMEOUT
    while not progress.done:
        if task.done():
            task.result()  # re-raise the consumer's failure
            raise RuntimeError("the consumer stopped before every event was committed")
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"only {progress.count} events committed in {RUN_TIMEOUT}s")
        await asyncio.sleep(0.01)


def _expect(actual: object, wanted: int, what: str) -> None:
    if actual != wanted:
        raise RuntimeError(f"{what}: expected {wanted}, found {actual}")


# -- the section --------------------------------------------------------------
@dataclass(frozen=True)
class FoundationRates:
    consume: Rate
    insert_unnest: Rate
    insert_executemany: Rate
    noop: Rate
    one_row: Rate
    noop_phases: PhaseClock
    one_row_phases: PhaseClock
    noop_startup: StartupTimeline
    one_row_startup: StartupTimeline

    @property
    def raw_insert(self) -> Rate:
        """The faster insert form: the stricter baseline."""
        return max(self.insert_unnest, self.insert_executemany, key=lambda r: r.eps)

    @property
    def raw_insert_form(self) -> str:
        return "unnest" if self.raw_insert is self.insert_unnest else "executemany"

    @property
    def baseline(self) -> float:
        return min(self.consume.eps, self.raw_insert.eps)


async def measure(infra: BenchInfra, count: int) -> FoundationRates:
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    topic = f"bench.purchases.{uuid.uuid4().hex[:8]}"
    consume, unnest, many = await _raw_baselines(infra, topic, count)
    # The workload's ~200k tracked objects are gone now: a real service does not hold
    # them, and they would make every full garbage collection in the runtime slower.
    gc.collect()
    noop, noop_phases, noop_startup = await runtime_run(
        infra, topic, count, noop_registry(), "runtime, no-op handler"
    )
    one_row, one_row_phases, one_row_startup = await runtime_run(
        infra, topic, count, one_row_registry(), "runtime, one-row handler (unnest)"
    )
    return FoundationRates(
        consume,
        unnest,
        many,
        noop,
        one_row,
        noop_phases,
        one_row_phases,
        noop_startup,
        one_row_startup,
    )


async def _raw_baselines(infra: BenchInfra, topic: str, count: int) -> tuple[Rate, Rate, Rate]:
    """Produce the events, then time the raw broker and PostgreSQL on them."""
    purchases = make_purchases(count)
    print(f"producing {count:,} purchase.completed events to {topic} ({PARTITIONS} partitions)")
    acked = await produce(infra.bootstrap_servers, topic, purchases, PARTITIONS)
    _expect(acked, count, f"events acknowledged on {topic}")
    print("measuring raw consume, raw inserts, runtime no-op, runtime one-row ...")
    consume = await raw_consume(infra.bootstrap_servers, topic, count)
    raw_db = await infra.fresh_database("points")
    unnest = await raw_insert(raw_db, purchases, "unnest")
    many = await raw_insert(raw_db, purchases, "executemany")
    return consume, unnest, many


def report(infra: BenchInfra, count: int, rates: FoundationRates) -> dict[str, Any]:
    """Print the table and targets; return the figures for bench-results.json."""
    base = rates.baseline
    print_table(
        f"{SECTION}: {count:,} events, {PARTITIONS} partitions, batches of {BATCH}",
        [rates.consume, rates.insert_unnest, rates.insert_executemany, rates.noop, rates.one_row],
        base,
    )
    print(
        f"baseline = min(raw consume {rates.consume.eps:,.0f}, raw insert "
        f"{rates.raw_insert.eps:,.0f} [{rates.raw_insert.name}]) = {base:,.0f} events/s"
    )
    one = rates.one_row
    print(
        f"one-row handler: {ratio_text(one.eps, base).strip()} of baseline from start, "
        f"{ratio_text(one.steady_eps, base).strip()} steady (a figure, not a target)"
    )
    print(
        target_line(
            f"runtime no-op >= {TARGET_NOOP_EPS:,} events/s steady",
            f"{rates.noop.steady_eps:,.0f}",
            rates.noop.steady_eps >= TARGET_NOOP_EPS,
        )
    )
    print(
        target_line(
            f"runtime one-row >= {TARGET_ONE_ROW_EPS:,} events/s steady",
            f"{one.steady_eps:,.0f}",
            one.steady_eps >= TARGET_ONE_ROW_EPS,
        )
    )
    print(rates.noop_startup.line("runtime no-op"))
    print(rates.one_row_startup.line("runtime one-row"))
    phases = {
        "runtime_noop": print_phases(f"{SECTION} runtime, no-op handler", rates.noop_phases, count),
        "runtime_one_row": print_phases(
            f"{SECTION} runtime, one-row handler", rates.one_row_phases, count
        ),
    }
    figures = _figures(infra, count, rates)
    for run, by_phase in phases.items():
        figures[f"{SECTION}.{run}_cpu_us_per_event"] = round(sum(by_phase.values()), 1)
        figures.update(
            {f"{SECTION}.{run}_cpu_us_per_event.{phase}": us for phase, us in by_phase.items()}
        )
    return figures


def _figures(infra: BenchInfra, count: int, rates: FoundationRates) -> dict[str, Any]:
    p = f"{SECTION}."
    figures: dict[str, Any] = {
        p + "events": count,
        p + "partitions": PARTITIONS,
        p + "batch_size": BATCH,
        p + "postgres_durable": infra.durable,
        p + "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        p + "baseline_eps": round(rates.baseline),
        p + "raw_insert_form": rates.raw_insert_form,
    }
    named = {
        "raw_consume": rates.consume,
        "raw_insert_unnest": rates.insert_unnest,
        "raw_insert_executemany": rates.insert_executemany,
        "raw_insert": rates.raw_insert,
        "runtime_noop": rates.noop,
        "runtime_one_row": rates.one_row,
    }
    for key, rate in named.items():
        figures[f"{p}{key}_eps"] = round(rate.eps)
        figures[f"{p}{key}_steady_eps"] = round(rate.steady_eps)
        figures[f"{p}{key}_ratio"] = round(rate.eps / rates.baseline, 3)
        figures[f"{p}{key}_first_batch_s"] = round(rate.first_batch_s, 3)
    figures[p + "target_noop_steady_eps_pass"] = rates.noop.steady_eps >= TARGET_NOOP_EPS
    figures[p + "target_one_row_steady_eps_pass"] = rates.one_row.steady_eps >= TARGET_ONE_ROW_EPS
    figures.update(rates.noop_startup.figures(p + "runtime_noop_"))
    figures.update(rates.one_row_startup.figures(p + "runtime_one_row_"))
    return figures


async def run(infra: BenchInfra, count: int) -> dict[str, Any]:
    rates = await measure(infra, count)
    return report(infra, count, rates)
