"""Points section: end-to-end accrual throughput and balance GET latency under load.

1. Accrual, one instance: N purchase.completed events are pre-produced (8 partitions,
   20,000 customers, 50 merchants). The points consumers (the service's own registry:
   rules, lots, ledger, tiers, outbox; as many members of the group in the one process as
   the service runs by default, `POINTS_CONSUMERS`) and the outbox relay run as the app
   runs them. Timed from the consumers' start until every event's batch has committed
   (balances committed) and until the outbox is empty (every outgoing event relayed to
   loyalty.points).
2. Balance GET latency: `python -m services.points` (HTTP only) on the database filled by
   step 1, with one and with two uvicorn processes (POINTS_HTTP_WORKERS), driven
   open-loop at a fixed rate over real HTTP for a fixed time by a bare keep-alive client
   (cheap enough not to steal the server's CPU); latency is measured from each request's
   due time, so a stall also delays the requests queued behind it (no coordinated
   omission).
Targets (issue 12; reported, never failing): accrual, topic -> balances -> relayed,
>= 10,000 events/s steady (stretch 25,000): the events after the first 10%, from the
batch that passed 10% until the outbox was empty; balance GET p99 < 10 ms at 1,000
requests/s offered with one server process (two processes: a figure, no target). The
consumer's start to first applied batch is printed split (bench.startup).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import httpx

from bench.foundation import TimedConsumer
from bench.infra import BenchInfra, free_port, process_cpu_seconds
from bench.phases import POLL, PhaseClock, TaskPhase, WaitClock, print_phases, runtime_phases
from bench.report import Progress, Rate, garbage_collection_time, print_table, target_line
from bench.startup import StartupTimeline
from bench.workload import make_purchases, produce
from services.points.accounts.repository import AccountRepository
from services.points.accrual import handlers as accrual_handlers
from services.points.accrual import service as accrual
from services.points.accrual.repository import OrderRepository
from services.points.handlers import points_registry
from services.points.returns.repository import ReturnRepository
from services.points.scopes import POINTS_READ, SCOPES
from services.points.settings import PointsSettings
from services.points.uow import PointsUnitOfWork
from shared.auth import create_key, register_scopes
from shared.db import asyncpg_dsn, create_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.runtime import BatchApplier, EventConsumer
from shared.outbox import OutboxRelay, OutboxWriter, relay_producer

SECTION = "points"
PARTITIONS = 8
BATCH = PointsSettings.model_fields["max_batch"].default  # the service's defaults
RELAY_BATCH = PointsSettings.model_fields["outbox_batch"].default
MEMBERS = PointsSettings.model_fields["consumers"].default  # consumers in the one process
TARGET_EPS = 10_000  # accrual end to end, steady
STRETCH_EPS = 25_000
TARGET_P99_MS = 10.0
RATE = 1_000  # balance GETs per second offered
DURATION = 10.0  # seconds measured, after WARM_UP seconds at the same rate
WARM_UP = 2.0
SERVER_PROCESSES = (1, 2)  # uvicorn processes of one instance (POINTS_HTTP_WORKERS)
CONNECTIONS = 32  # client connections (and requests in flight) at most
RUN_TIMEOUT = 600.0


@dataclass(frozen=True)
class AccrualFigures:
    committed: Rate  # events -> balances committed
    relayed: Rate  # events -> outbox relayed
    messages_relayed: int
    database_url: str
    customers: list[str]
    phases: PhaseClock
    waits: WaitClock
    startup: StartupTimeline
    # CPU seconds of the processes the bench does not time by phase, over the run
    others_cpu: dict[str, float]


class CountingRelay(OutboxRelay):
    """The service's relay, counting the rows it publishes."""

    published = 0

    async def relay_once(self) -> int:
        sent = await super().relay_once()
        self.published += sent
        return sent


async def measure_accrual(infra: BenchInfra, count: int) -> AccrualFigures:
    unique = uuid.uuid4().hex[:8]
    inbound, outbound = f"bench.points.in.{unique}", f"bench.points.out.{unique}"
    purchases = make_purchases(count)
    print(f"producing {count:,} purchase.completed events to {inbound} ({PARTITIONS} partitions)")
    acked = await produce(infra.bootstrap_servers, inbound, purchases, PARTITIONS)
    if acked != count:
        raise RuntimeError(f"only {acked} of {count} events acknowledged")
    await ensure_topics(infra.bootstrap_servers, [outbound], partitions=PARTITIONS)
    customers = sorted(set(purchases.customers))
    del purchases
    gc.collect()
    url = await infra.fresh_database("points")
    print(f"measuring points accrual: {MEMBERS} consumer member(s) + outbox relay, one process ...")
    clock, waits = PhaseClock(), WaitClock()
    others = {"PostgreSQL": infra.pg_pid, "broker": infra.broker_pid}
    before = {name: process_cpu_seconds(pid) for name, pid in others.items()}
    # The wait clock's wrappers inside the phase clock's (see `WaitClock`).
    with waits.patch(_batch_waits()), clock.patch(_hot_path_phases()):
        committed, relayed, messages, startup = await _run_accrual(
            infra, url, inbound, outbound, count, clock
        )
    others_cpu = {name: process_cpu_seconds(pid) - before[name] for name, pid in others.items()}
    return AccrualFigures(
        committed, relayed, messages, url, customers, clock, waits, startup, others_cpu
    )


def _hot_path_phases() -> list[tuple[Any, str, str]]:
    """(owner, attribute, phase): what the per-phase table times, in the order it prints."""
    before, after = runtime_phases()
    return [
        *before,
        (accrual_handlers, "accrue_purchases", "domain: accrual rules (accrual.service)"),
        (accrual, "rule_book", "read: rule book"),
        (AccountRepository, "lock_rows", "read: lock + load accounts"),
        (AccountRepository, "attach_live_lots", "read: lock + load accounts"),
        (AccountRepository, "attach_live_totals", "read: lock + load accounts"),
        (OrderRepository, "load", "read: orders named"),
        (ReturnRepository, "load", "read: parked returns"),
        (OrderRepository, "daily_points", "read: daily points"),
        (accrual, "emit_all", "encode outgoing events (outbox.emit)"),
        # the early writes' task (accrual.EarlyWrites): its lots and orders rows below
        (accrual.EarlyWrites, "_insert", TaskPhase("write: early lots + orders, own task")),
        (AccountRepository, "_save_accounts", "write: accounts"),
        (AccountRepository, "_insert_lots", "write: lots"),
        (AccountRepository, "_update_lot_counters", "write: lot counters"),
        (AccountRepository, "_insert_ledger", "write: ledger"),
        (OrderRepository, "_insert_orders", "write: order_earnings"),
        (OrderRepository, "_update_orders", "write: order updates"),
        (ReturnRepository, "save", "write: returns"),
        (OrderRepository, "add_daily_points", "write: daily_earnings"),
        *after,
        (OutboxRelay, "_publish", "relay: produce to the broker"),
    ]


# The batch's path, as the consumer's loop awaits it: (owner, coroutine function, row).
_BATCH = "batch: apply + commit (the consumer's loop awaits it)"
_APPLY = "apply"
_COMMIT = "commit (the transaction's end)"
_COMPUTING = "the handler computing; the next batch's decode and the relay at its yields"
_EARLY_TASK = "beside it: the early write task (lots, then orders)"


def _batch_waits() -> list[tuple[Any, str, str]]:
    reads = "read: orders named, parked returns, live totals"
    return [
        (EventConsumer, "_apply_with_retries", _BATCH),
        (BatchApplier, "apply", _APPLY),
        (BatchApplier, "_record_processed", "dedupe: processed events recorded (COPY)"),
        (AccountRepository, "lock_rows", "read: accounts ensured, locked and loaded"),
        (OrderRepository, "load", reads),
        (ReturnRepository, "load", reads),
        (AccountRepository, "attach_live_lots", reads),
        (AccountRepository, "attach_live_totals", reads),
        (OrderRepository, "daily_points", reads),
        (accrual.EarlyWrites, "finish", "wait: the previous chunk's early write"),
        (PointsUnitOfWork, "save", "write: the save (accounts, ledger COPY and its triggers)"),
        (OutboxWriter, "flush", "write: outbox rows"),
        (accrual.EarlyWrites, "_insert", _EARLY_TASK),
    ]


def print_waits(waits: WaitClock, events: int) -> dict[str, float]:
    """Where a batch's wall time goes, µs per event; returns {row: µs per event}.

    The awaits inside the apply do not nest in one another; what the apply spent outside
    them is the handler's own computing, with whatever other task ran at its yields."""
    wall = waits.wall
    inside = [
        label
        for label in dict.fromkeys(label for _, _, label in _batch_waits())
        if label not in (_BATCH, _APPLY, _EARLY_TASK)
    ]
    rows = [
        (_BATCH, wall[_BATCH]),
        *((label, wall[label]) for label in inside),
        (_COMPUTING, max(wall[_APPLY] - sum(wall[label] for label in inside), 0.0)),
        (_COMMIT, max(wall[_BATCH] - wall[_APPLY], 0.0)),
        (_EARLY_TASK, wall[_EARLY_TASK]),
    ]
    print()
    print(f"points accrual: wall time per event on the batch's path ({events:,} events)")
    header = f"{'await':<80} {'µs/event':>9}"
    print(header)
    print("-" * len(header))
    figures: dict[str, float] = {}
    for label, seconds in rows:
        per_event = seconds / events * 1e6 if events else 0.0
        indent = "" if label in (_BATCH, _EARLY_TASK) else "  "
        print(f"{indent + label:<80} {per_event:>9.1f}")
        figures[label] = round(per_event, 2)
    print(
        "wall time (time.perf_counter) from call to return, summed over the run; the "
        "indented rows add up to the batch's"
    )
    if MEMBERS > 1:
        print(
            f"summed over the {MEMBERS} consumer members' batches, which overlap: while one "
            "awaits PostgreSQL, another computes"
        )
    return figures


async def _run_accrual(
    infra: BenchInfra, url: str, inbound: str, outbound: str, count: int, clock: PhaseClock
) -> tuple[Rate, Rate, int, StartupTimeline]:
    engine = create_engine(url)
    # The relay's producer as the services build it (acks, record batch size).
    producer = await relay_producer(infra.bootstrap_servers, "bench-points-relay")
    relay = CountingRelay(engine, producer, service="bench-points", batch_size=RELAY_BATCH)
    progress = Progress(count)
    group = f"bench-points-{uuid.uuid4().hex[:8]}"
    consumers = [
        TimedConsumer(
            progress,
            infra.broker,
            group_id=group,
            topics=[inbound],
            bootstrap_servers=infra.bootstrap_servers,
            engine=engine,
            registry=points_registry(points_topic=outbound),
            max_batch=BATCH,
            after_commit=relay.wakeup.set,
        )
        for _ in range(MEMBERS)
    ]
    consumer = consumers[0]  # its start is the one printed: members join the group together
    try:
        with garbage_collection_time() as gc_seconds, clock.process():
            progress.restart()
            tasks = [
                *(asyncio.create_task(clock.task(member.run(), POLL)) for member in consumers),
                asyncio.create_task(clock.task(relay.run(), "relay: select + delete rows")),
            ]
            await _until(lambda: progress.done, tasks, "events committed")
            committed = progress.rate(
                "accrual: events -> balances committed",
                note=f"{sum(c.batches for c in consumers)} batches; gc {gc_seconds[0]:.1f}s",
            )
            await _until_outbox_empty(url, tasks)
            relayed_end = time.perf_counter()
            relayed_at = relayed_end - progress.started
            for member in consumers:
                member.request_stop()
            relay.stop()
            await asyncio.gather(*tasks)
    finally:
        await producer.stop()
        await engine.dispose()
    relayed = Rate(
        "accrual: events -> outbox relayed to loyalty.points",
        count,
        relayed_at,
        # after warm-up: from the batch that passed 10% committed until the outbox was empty
        progress.steady_until(relayed_end),
        committed.first_batch_s,
        note=f"{relay.published:,} messages relayed",
    )
    return committed, relayed, relay.published, consumer.startup


async def _until(done: Any, tasks: list[asyncio.Task[None]], what: str) -> None:
    deadline = time.perf_counter() + RUN_TIMEOUT
    while not done():
        for task in tasks:
            if task.done():
                task.result()
                raise RuntimeError(f"a worker stopped before all {what}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"not all {what} within {RUN_TIMEOUT}s")
        await asyncio.sleep(0.01)


async def _until_outbox_empty(url: str, tasks: list[asyncio.Task[None]]) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        while int(await conn.fetchval("SELECT count(*) FROM outbox")):
            await _until(lambda: True, tasks, "outbox rows relayed")  # a crashed worker raises
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


# -- 2. balance GET latency ---------------------------------------------------
@dataclass(frozen=True)
class Latency:
    requests: int
    errors: int
    achieved_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_us: float = float("nan")  # the server's CPU per measured request


def _percentile(sorted_ms: list[float], share: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(int(share * len(sorted_ms)), len(sorted_ms) - 1)]


async def measure_balance_latency(
    infra: BenchInfra, url: str, customers: list[str], processes: int
) -> Latency:
    await _settle(url)
    token = await _reader_key(url)
    port = free_port()
    server = _start_server(infra, url, port, processes)
    try:
        await _wait_ready(port, server)
        print(
            f"driving balance GETs at {RATE}/s against {processes} server process(es): "
            f"{WARM_UP:g}s warm-up, {DURATION:g}s measured"
        )
        await _drive(port, token, customers, WARM_UP)
        cpu_before = process_cpu_seconds(server.pid)
        latency = await _drive(port, token, customers, DURATION)
        cpu_us = (process_cpu_seconds(server.pid) - cpu_before) / latency.requests * 1e6
        return replace(latency, server_cpu_us=cpu_us)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def _settle(url: str) -> None:
    """Leave PostgreSQL as it is once the bulk load of step 1 has settled, before timing reads.

    Right after a bulk load the planner still believes the tables are empty and may scan
    them whole for every balance read (ANALYZE). And autovacuum would soon vacuum the tables
    step 1 filled and emptied (processed events, the relayed outbox) and the checkpointer
    write out what it dirtied: both run for seconds and would do so during the measurement,
    on the two cores the server and the driver share, so their stalls were measured as the
    balance read's tail. VACUUM (ANALYZE) and CHECKPOINT do that work now.
    """
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("VACUUM (ANALYZE)")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _reader_key(url: str) -> str:
    register_scopes(*SCOPES)  # what the loyalty CLI does before it issues a key
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            return (await create_key(conn, "bench reader", [POINTS_READ])).plaintext
    finally:
        await engine.dispose()


def _start_server(
    infra: BenchInfra, url: str, port: int, processes: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "POINTS_DATABASE_URL": url,
        "POINTS_HTTP_PORT": str(port),
        "POINTS_HTTP_WORKERS": str(processes),
        "POINTS_RUN_WORKERS": "false",
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.points"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_ready(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.perf_counter() + 30
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        while time.perf_counter() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the points server exited with {server.returncode}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("the points server did not answer /healthz within 30s")


class KeepAliveConnection(asyncio.Protocol):
    """A bare HTTP/1.1 keep-alive GET client: one request at a time on one connection,
    its response parsed where the bytes arrive (`data_received`).

    The load generator shares two cores with the server and PostgreSQL, so it must cost
    little per request: httpx's pool spends milliseconds of CPU per request under load, and
    asyncio streams (a reader, a writer and their locks and buffers per request) 130 µs of
    this process's CPU per request at 1,000/s; CPU the driver takes is CPU the server waits
    for, measured as server latency.
    """

    def __init__(self, head: bytes) -> None:
        self.head = head  # everything after the path: the version, Host, the API key
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    @classmethod
    async def open(cls, port: int, token: str) -> KeepAliveConnection:
        head = f" HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(lambda: cls(head.encode()), "127.0.0.1", port)
        return connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None or self.waiter.done():
            return
        try:
            length = _content_length(bytes(self.buffer[:end]))
            status = int(self.buffer[9:12])  # b"HTTP/1.1 200 ..."
        except ValueError as error:
            self.waiter.set_exception(error)
            return
        if len(self.buffer) >= end + 4 + length:  # the body is read and dropped
            del self.buffer[: end + 4 + length]
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    async def get(self, path: str) -> int:
        """The status of GET `path`."""
        if self.transport is None:
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(b"GET " + path.encode() + self.head)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _content_length(header: bytes) -> int:
    """The Content-Length of a response header block (status line and fields)."""
    lowered = header.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at < 0:
        raise ValueError("response without Content-Length")
    start = at + len(b"\r\ncontent-length:")
    stop = lowered.find(b"\r\n", start)
    return int(lowered[start : stop if stop >= 0 else len(lowered)])


async def _drive(port: int, token: str, customers: list[str], seconds: float) -> Latency:
    """Open loop: request i is due at start + i / RATE, whatever the earlier ones do.

    CONNECTIONS workers take due requests in order; a request that waits for a free
    connection counts that wait in its latency, measured from when it was due.
    """
    rng = random.Random(11)
    total = int(RATE * seconds)
    latencies: list[float] = []
    errors = [0]
    due_queue: asyncio.Queue[tuple[float, str] | None] = asyncio.Queue()

    async def worker() -> None:
        connection = await KeepAliveConnection.open(port, token)
        try:
            while (item := await due_queue.get()) is not None:
                due, customer = item
                try:
                    ok = await connection.get(f"/v1/customers/{customer}/balance") == 200
                except (OSError, ValueError):
                    ok = False
                    connection.close()
                    connection = await KeepAliveConnection.open(port, token)
                latencies.append((time.perf_counter() - due) * 1000)
                errors[0] += 0 if ok else 1
        finally:
            connection.close()

    workers = [asyncio.create_task(worker()) for _ in range(CONNECTIONS)]
    # perf_counter, not loop.time(): uvloop's clock moves in whole milliseconds.
    start = time.perf_counter() + 0.05
    for index in range(total):
        due = start + index / RATE
        if due > (now := time.perf_counter()):
            await asyncio.sleep(due - now)
        due_queue.put_nowait((due, rng.choice(customers)))
    for _ in workers:
        due_queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return Latency(
        requests=total,
        errors=errors[0],
        achieved_rps=total / elapsed,
        p50_ms=_percentile(ordered, 0.50),
        p95_ms=_percentile(ordered, 0.95),
        p99_ms=_percentile(ordered, 0.99),
        max_ms=ordered[-1] if ordered else float("nan"),
    )


# -- the section --------------------------------------------------------------
def _latency_line(processes: int, latency: Latency) -> str:
    return (
        f"balance GET at {RATE}/s over HTTP, {processes} server process(es) "
        f"({latency.requests:,} requests, achieved {latency.achieved_rps:,.0f}/s, "
        f"{latency.errors} errors): p50 {latency.p50_ms:.1f} ms, p95 {latency.p95_ms:.1f} ms, "
        f"p99 {latency.p99_ms:.1f} ms, max {latency.max_ms:.1f} ms; "
        f"server CPU {latency.server_cpu_us:,.0f} µs per request"
    )


def _latency_ok(latency: Latency) -> bool:
    return latency.p99_ms < TARGET_P99_MS and latency.errors == 0


def _accrual_targets(relayed: Rate) -> list[tuple[str, str, bool]]:
    """(key, what, met) of the accrual targets, on the end-to-end steady rate."""
    steady = relayed.steady_eps
    what = "points accrual (topic -> balances -> relayed)"
    return [
        (
            "target_accrual_steady_eps_pass",
            f"{what} >= {TARGET_EPS:,} events/s steady",
            steady >= TARGET_EPS,
        ),
        (
            "target_accrual_stretch_steady_eps_pass",
            f"{what} stretch >= {STRETCH_EPS:,} events/s steady",
            steady >= STRETCH_EPS,
        ),
    ]


def report(
    infra: BenchInfra, count: int, accrual: AccrualFigures, latencies: dict[int, Latency]
) -> dict[str, Any]:
    print_table(
        f"{SECTION}: {count:,} purchase events, {PARTITIONS} partitions, batches of {BATCH}",
        [accrual.committed, accrual.relayed],
        accrual.relayed.eps,
    )
    phases = print_phases(f"{SECTION} accrual", accrual.phases, count)
    waits = print_waits(accrual.waits, count)
    others = {name: seconds / count * 1e6 for name, seconds in accrual.others_cpu.items()}
    print(
        "the other processes' CPU per event over the same run (start to outbox empty): "
        + ", ".join(f"{name} {us:,.1f} µs" for name, us in others.items())
        + f"; all three: {sum(phases.values()) + sum(others.values()):,.1f} µs per event"
    )
    end_to_end = accrual.relayed.eps
    print(
        f"accrual end to end {end_to_end:,.0f} events/s from start, "
        f"{accrual.relayed.steady_eps:,.0f} steady (balances committed "
        f"{accrual.committed.eps:,.0f}/s, steady {accrual.committed.steady_eps:,.0f}/s)"
    )
    for _, what, met in _accrual_targets(accrual.relayed):
        print(target_line(what, f"{accrual.relayed.steady_eps:,.0f}", met))
    print(accrual.startup.line("points accrual"))
    for processes, latency in latencies.items():
        print(_latency_line(processes, latency))
    if 1 in latencies:
        one = latencies[1]
        print(
            target_line(
                f"points balance GET p99 < {TARGET_P99_MS:g} ms at {RATE:,}/s offered, "
                "1 server process, no errors",
                f"{one.p99_ms:.1f} ms ({one.errors} errors, achieved {one.achieved_rps:,.0f}/s)",
                _latency_ok(one),
            )
        )
    p = f"{SECTION}."
    figures: dict[str, Any] = {
        p + "events": count,
        p + "partitions": PARTITIONS,
        p + "batch_size": BATCH,
        p + "postgres_durable": infra.durable,
        p + "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        p + "accrual_committed_eps": round(accrual.committed.eps),
        p + "accrual_committed_steady_eps": round(accrual.committed.steady_eps),
        p + "accrual_relayed_eps": round(end_to_end),
        p + "accrual_relayed_steady_eps": round(accrual.relayed.steady_eps),
        p + "accrual_messages_relayed": accrual.messages_relayed,
        p + "balance_rate_rps": RATE,
        p + "accrual_cpu_us_per_event": round(sum(phases.values()), 1),
        **{
            f"{p}accrual_cpu_us_per_event_{name.lower()}": round(us, 1)
            for name, us in others.items()
        },
    }
    figures.update({p + key: met for key, _, met in _accrual_targets(accrual.relayed)})
    figures.update(accrual.startup.figures(p + "accrual_"))
    figures.update({f"{p}accrual_cpu_us_per_event.{phase}": us for phase, us in phases.items()})
    figures.update({f"{p}accrual_wall_us_per_event.{row}": us for row, us in waits.items()})
    for processes, latency in latencies.items():
        # One process is the headline figure (`balance_*`, read by bench.summary).
        q = f"{p}balance_" if processes == 1 else f"{p}balance_{processes}proc_"
        figures.update(
            {
                q + "requests": latency.requests,
                q + "errors": latency.errors,
                q + "achieved_rps": round(latency.achieved_rps, 1),
                q + "p50_ms": round(latency.p50_ms, 2),
                q + "p95_ms": round(latency.p95_ms, 2),
                q + "p99_ms": round(latency.p99_ms, 2),
                q + "max_ms": round(latency.max_ms, 2),
                q + "server_cpu_us": round(latency.server_cpu_us, 1),
            }
        )
        if processes == 1:  # two processes: a figure without a target
            figures[p + "target_balance_p99_pass"] = _latency_ok(latency)
    return figures


async def run(infra: BenchInfra, count: int) -> dict[str, Any]:
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    accrual = await measure_accrual(infra, count)
    latencies = {
        processes: await measure_balance_latency(
            infra, accrual.database_url, accrual.customers, processes
        )
        for processes in SERVER_PROCESSES
    }
    return report(infra, count, accrual, latencies)
