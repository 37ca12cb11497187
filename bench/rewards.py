"""Section "rewards": service.incident -> compensation.granted, end to end through Kafka.

Publishes breached dish-wait incidents (one order each, the seeded policy: a fruit-plate
voucher; generous caps, so the cap reads run but never hold a grant) once the rewards
consumer has joined its group, paced at a steady 1,000 per second for 30 s (fewer when
`--events` is smaller: one second per 1,000 events), while the consumer and outbox relay
run, and reads the compensation events back. Prints the achieved publish rate, whether
the consumer kept up, and the p50/p95/p99/max latency from each incident's publish to its
compensation event arriving on `loyalty.rewards`, the same split into stages (broker and
queue, transaction, offsets, relay, reader), the CPU of this process per incident by phase
(bench.phases), and the consumer's start to first applied batch (bench.startup). The
incidents are published from a process of their own, as a point of sale would: the
consumer, the relay and the reader share this one. Target (issue 12; reported, never
failing): p99 < 1 s, every incident compensated, at the offered rate.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.foundation import TimedConsumer
from bench.infra import BenchInfra
from bench.phases import POLL, PhaseClock, print_phases, runtime_phases
from bench.report import Progress, target_line
from bench.startup import StartupTimeline
from services.rewards.handlers import rewards_registry
from services.rewards.settings import RewardsSettings, RewardsTopics
from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.runtime import BatchOutcome, EventConsumer, Incoming, Record
from shared.outbox import OutboxRelay

SECTION = "rewards"
_CAPS = (
    "INSERT INTO merchant_limits (merchant_id, customer_refund_cap_minor, customer_breach_cap,"
    " merchant_monthly_budget_minor) VALUES ('hotel-restaurant', 100000000, 1000, 100000000000)"
)
# The orders the incidents name, as rewards records them from pos.purchases: compensation is
# paid on the recorded amount, so an incident for an unrecorded order would only be held.
_ORDERS = (
    "INSERT INTO orders (order_id, customer_id, merchant_id, amount_minor, currency, ordered_at)"
    " SELECT 'o' || n, 'c' || (n % 997), 'hotel-restaurant', 4000, 'EUR', now()"
    " FROM generate_series(0, :last) AS n"
)
_FETCH_MAX_WAIT_MS = RewardsSettings.model_fields["fetch_max_wait_ms"].default
# The reader stands for a downstream consumer waiting for the event; Tansu does not answer
# a waiting fetch when a record arrives, so aiokafka's default 500 ms added ~130 ms (up to
# 250) of the reader's own to every figure (`collect` in the stage table); a shorter wait
# costs this process more idle fetch requests, so the same 50 ms as the rewards consumer.
READER_FETCH_MAX_WAIT_MS = 50
RATE = 1_000  # incidents published per second, paced
DURATION = 30.0  # seconds of publishing at RATE (the target's load)
TARGET_P99_MS = 1_000.0
PACE_TOLERANCE = 0.95  # below this share of RATE the publisher, not rewards, fell behind


def _hot_path_phases() -> list[tuple[Any, str, str]]:
    """(owner, attribute, phase): what the per-phase table times, in the order it prints."""
    from services.rewards.compensation import repository as compensation_repository
    from services.rewards.compensation import service as compensation
    from services.rewards.configuration.repository import ConfigurationRepository
    from services.rewards.domain.breach_book import BreachBook
    from services.rewards.incidents import service as incidents
    from services.rewards.orders.repository import OrderRepository
    from services.rewards.vouchers import service as vouchers
    from services.rewards.vouchers.repository import VoucherRepository

    repository = compensation_repository.CompensationRepository
    before, after = runtime_phases()
    return [
        *before,
        (incidents, "report_of", "domain: incident -> breach report"),
        (ConfigurationRepository, "version", "read: config version (cache check)"),
        (incidents, "batch_policies", "read: policies"),
        (repository, "lock_parties", "lock: merchants + customers (advisory)"),
        (OrderRepository, "recorded", "read: orders named"),
        (incidents, "batch_limits", "read: limits"),
        (repository, "load_book", "read: breaches (FOR UPDATE)"),
        (repository, "voucher_values", "read: voucher values"),
        (repository, "_customer_grants", "read: customers' grants (caps)"),
        (repository, "_merchant_months", "read: merchants' month spend (budget)"),
        (repository, "_held_self_reported", "read: held self-reported parts"),
        (BreachBook, "assess", "domain: assess (BreachBook)"),
        (repository, "write_book", "write: breaches + compensations"),
        (VoucherRepository, "definitions_of", "read: reward definitions"),
        (VoucherRepository, "insert_new", "write: vouchers"),
        (VoucherRepository, "insert_fresh", "write: vouchers"),
        (compensation, "issue_vouchers", "domain: voucher rows (codes, ids)"),
        (vouchers, "reward_issued", "encode outgoing events"),
        (compensation, "_emit_payment", "encode outgoing events"),
        *after,
        (OutboxRelay, "_publish", "relay: produce to the broker"),
    ]


def _incident(n: int, at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "service.incident",
        "version": 1,
        "occurred_at": at.isoformat(),
        "source": "bench",
        "customer_id": f"c{n % 997}",
        "data": {
            "incident_id": f"i{n}",
            "merchant_id": "hotel-restaurant",
            "promise_kind": "dish_wait_time",
            "measured": {"value": "12", "unit": "minutes"},
            "order_id": f"o{n}",
            "order_amount": "40.00",
            "currency": "EUR",
        },
    }


# -- where an incident's latency goes ----------------------------------------
# Marks (perf_counter) per order id, taken by subclasses of the bench's consumer and of the
# service's relay, so the service's code carries no timing code of its own.
STAGES = (
    ("queued", "published -> its batch reached the consumer (linger, broker, fetch, queue)"),
    ("apply", "batch reached the consumer -> its transaction committed"),
    ("offsets", "transaction committed -> offsets committed, relay woken"),
    ("relay wait", "relay woken -> the relay selected the row"),
    ("relay send", "row selected -> compensation.granted acknowledged by the broker"),
    ("collect", "acknowledged -> read back by the bench's reader"),
)


@dataclass
class Marks:
    """When each incident (by order id) passed each point of the pipeline."""

    fetched: dict[str, float] = field(default_factory=dict)
    stored: dict[str, float] = field(default_factory=dict)
    woken: dict[str, float] = field(default_factory=dict)
    selected: dict[str, float] = field(default_factory=dict)
    acked: dict[str, float] = field(default_factory=dict)
    batches: list[tuple[int, float]] = field(default_factory=list)  # (events, apply seconds)


class TracedConsumer(TimedConsumer):
    """The bench's consumer, marking when each incident's batch arrived and committed."""

    def __init__(self, marks: Marks, **options: Any) -> None:
        super().__init__(**options)
        self.marks = marks
        self._orders: list[str] = []

    async def process(self, batch: dict[TopicPartition, list[Record]]) -> BatchOutcome | None:
        got = time.perf_counter()
        outcome = await super().process(batch)
        done = time.perf_counter()
        for order in self._orders:
            self.marks.fetched[order] = got
            self.marks.woken[order] = done
        committed = self.marks.stored.get(self._orders[0], done) if self._orders else done
        self.marks.batches.append((len(self._orders), committed - got))
        self._orders = []
        return outcome

    async def _apply_with_retries(self, items: list[Incoming]) -> BatchOutcome | None:
        outcome = await super()._apply_with_retries(items)
        now = time.perf_counter()
        self._orders = [
            item.event.data.order_id
            for item in items
            if item.event is not None and item.event.type == "service.incident"
        ]
        for order in self._orders:
            self.marks.stored[order] = now
        return outcome


class TracedRelay(OutboxRelay):
    """The service's relay, marking when each compensation.granted was selected and acked."""

    def __init__(self, marks: Marks, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marks = marks

    async def _publish(self, rows: Sequence[Any]) -> None:
        selected = time.perf_counter()
        await super()._publish(rows)
        acked = time.perf_counter()
        for row in rows:  # the relay's rows: (id, topic, key, value, headers)
            value = row[3]
            if b'"compensation.granted"' in value:
                order = orjson.loads(value)["data"]["order_id"]
                self.marks.selected[order] = selected
                self.marks.acked[order] = acked


def stage_figures(
    sent: dict[str, float], arrived: dict[str, float], marks: Marks
) -> dict[str, tuple[float, float, float]]:
    """stage -> (p50, p99, mean) in ms over the incidents that passed every mark."""
    points = [sent, marks.fetched, marks.stored, marks.woken, marks.selected, marks.acked, arrived]
    orders = [o for o in arrived if all(o in p for p in points)]
    figures = {}
    for index, (stage, _) in enumerate(STAGES):
        start, end = points[index], points[index + 1]
        ms = sorted((end[o] - start[o]) * 1000 for o in orders)
        mean = sum(ms) / len(ms) if ms else math.nan
        figures[stage] = (_percentile(ms, 0.50), _percentile(ms, 0.99), mean)
    return figures


def print_stages(figures: dict[str, tuple[float, float, float]], marks: Marks) -> None:
    print("where the latency goes (ms per incident; percentiles of each stage on its own):")
    print(f"  {'stage':<11} {'p50':>7} {'p99':>7} {'mean':>7}  what")
    for stage, what in STAGES:
        p50, p99, mean = figures[stage]
        print(f"  {stage:<11} {p50:>7.1f} {p99:>7.1f} {mean:>7.1f}  {what}")
    sizes = sorted(events for events, _ in marks.batches if events)
    applies = sorted(seconds * 1000 for events, seconds in marks.batches if events)
    if sizes:
        print(
            f"  consumer batches: {len(sizes)}, incidents per batch p50 {_percentile(sizes, 0.5)}"
            f" max {sizes[-1]}; transaction ms p50 {_percentile(applies, 0.5):.0f}"
            f" p99 {_percentile(applies, 0.99):.0f} max {applies[-1]:.0f}"
        )


async def _publish(
    producer: AIOKafkaProducer, topic: str, count: int, sent: dict[str, float]
) -> None:
    """Open loop: incident n is due at start + n / RATE, whatever the earlier sends did;
    its publish time is when it was handed to the producer."""
    start = time.perf_counter()
    for n in range(count):
        delay = start + n / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        event = _incident(n, datetime.now(UTC))
        sent[f"o{n}"] = time.perf_counter()
        await producer.send(topic, orjson.dumps(event), key=event["customer_id"].encode())
    await producer.flush()


def _publisher_process(bootstrap: str, topic: str, count: int, pipe: Connection) -> None:
    """The load generator, in a process of its own (a `multiprocessing` target).

    In the consumer's process its 1,000 sends a second took ~80 µs of CPU per incident
    (the sends and the producer's background tasks) on the event loop the consumer and the
    relay run on, a sixth of the process's CPU and a share of every batch's wall time: the
    rewards service never shares its loop with the point of sale.
    """
    asyncio.run(_publish_when_told(bootstrap, topic, count, pipe))


async def _publish_when_told(bootstrap: str, topic: str, count: int, pipe: Connection) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    sent: dict[str, float] = {}
    try:
        pipe.send("ready")
        pipe.recv()  # "go": nothing else runs in this process meanwhile
        await _publish(producer, topic, count, sent)
    finally:
        await producer.stop()
    pipe.send(sent)  # perf_counter is the system's monotonic clock: the same in every process


async def _publish_elsewhere(
    bootstrap: str, topic: str, count: int, go: Awaitable[None], started: Callable[[], None]
) -> dict[str, float]:
    """Publish the incidents from another process once `go` completes; their publish
    times by order id."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=_publisher_process, args=(bootstrap, topic, count, theirs), daemon=True
    )
    process.start()
    theirs.close()  # a crashed publisher then ends our reads with EOFError
    try:
        if await asyncio.to_thread(ours.recv) != "ready":
            raise RuntimeError("the publisher process did not start")
        await go
        started()
        ours.send("go")
        sent: dict[str, float] = await asyncio.to_thread(ours.recv)
        return sent
    finally:
        await asyncio.to_thread(process.join, 30)
        if process.is_alive():
            process.terminate()


async def _collect(bootstrap: str, topic: str, count: int, patience: float) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        fetch_max_wait_ms=READER_FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    arrived: dict[str, float] = {}
    deadline = time.perf_counter() + patience
    try:
        while len(arrived) < count and time.perf_counter() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = orjson.loads(record.value or b"{}")
                    if event.get("type") == "compensation.granted":
                        arrived[event["data"]["order_id"]] = time.perf_counter()
    finally:
        await consumer.stop()
    return arrived


async def _joined(consumer: EventConsumer, topic: str, patience: float = 60.0) -> None:
    """Wait until the group has handed out `topic`'s partitions: the figures measure the
    pipeline, not the broker's group-join delay (several seconds on Tansu)."""
    deadline = time.perf_counter() + patience
    while time.perf_counter() < deadline:
        if any(tp.topic == topic for tp in consumer.consumer.assignment()):
            return
        await asyncio.sleep(0.05)


def _percentile(ordered: Sequence[float], share: float) -> float:
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)] if ordered else math.nan


def summarize(incidents: int, sent: dict[str, float], arrived: dict[str, float]) -> dict[str, Any]:
    """The figures of one paced run, from publish and arrival times (perf_counter)."""
    latencies = sorted((arrived[o] - sent[o]) * 1000 for o in arrived if o in sent)
    first_sent, last_sent = min(sent.values(), default=0.0), max(sent.values(), default=0.0)
    publishing = last_sent - first_sent
    achieved = (len(sent) - 1) / publishing if publishing > 0 else math.nan
    last_arrival = max(arrived.values(), default=math.nan)
    drained = last_arrival - last_sent  # the backlog left when publishing stopped
    compensating = last_arrival - first_sent
    everything = len(arrived) == incidents
    p99 = _percentile(latencies, 0.99)
    paced = achieved >= PACE_TOLERANCE * RATE
    return {
        "incidents": incidents,
        "compensated": len(arrived),
        "publish_rate_rps": RATE,
        "publish_seconds": round(publishing, 2),
        "publish_achieved_rps": round(achieved, 1),
        "throughput_eps": round(len(arrived) / compensating, 1) if compensating > 0 else 0.0,
        "latency_p50_ms": round(_percentile(latencies, 0.50), 1),
        "latency_p95_ms": round(_percentile(latencies, 0.95), 1),
        "latency_p99_ms": round(p99, 1),
        "latency_max_ms": round(latencies[-1], 1) if latencies else math.nan,
        "drained_after_publish_s": round(drained, 3),
        "kept_up": everything and drained < TARGET_P99_MS / 1000,
        "target_compensation_p99_pass": everything and paced and p99 < TARGET_P99_MS,
    }


def report(figures: dict[str, Any], startup: StartupTimeline, describe: str) -> None:
    print(f"\n== rewards: incident -> compensation.granted ({describe})")
    for name, value in figures.items():
        if "startup" not in name:
            print(f"  {name:<28} {value}")
    seconds = figures["incidents"] / RATE
    short = "" if seconds >= DURATION else f" (this run: {seconds:g} s)"
    pace = figures["publish_achieved_rps"]
    print(
        f"publishing achieved {pace:,.0f} incidents/s of {RATE:,} offered; "
        f"the consumer {'kept up' if figures['kept_up'] else 'did NOT keep up'} "
        f"({figures['compensated']:,} of {figures['incidents']:,} compensated, backlog "
        f"drained {figures['drained_after_publish_s']:.2f} s after the last publish)"
    )
    print(
        target_line(
            f"rewards compensation.granted p99 < {TARGET_P99_MS / 1000:g} s at {RATE:,} "
            f"incidents/s for {DURATION:g} s{short}, all compensated",
            f"p50 {figures['latency_p50_ms']:,.0f} ms, p99 {figures['latency_p99_ms']:,.0f} ms, "
            f"max {figures['latency_max_ms']:,.0f} ms",
            figures["target_compensation_p99_pass"],
        )
    )
    print(startup.line("rewards"))


async def _pipeline(
    infra: BenchInfra,
    consumer: TracedConsumer,
    relay: TracedRelay,
    clock: PhaseClock,
    topics: tuple[str, str],
    sent: dict[str, float],
) -> dict[str, float]:
    """Run the consumer and the relay, publish the incidents once the consumer has joined,
    and read the compensation events back; their arrival times by order id."""
    inbound, outbound = topics
    incidents = consumer.progress.target
    tasks = [
        asyncio.create_task(clock.task(consumer.run(), POLL)),
        asyncio.create_task(clock.task(relay.run(), "relay: select + delete rows")),
    ]
    try:
        collecting = asyncio.create_task(
            clock.task(
                _collect(infra.bootstrap_servers, outbound, incidents, incidents / RATE + 120),
                "bench: reading compensation events back",
            )
        )
        sent.update(
            await _publish_elsewhere(
                infra.bootstrap_servers,
                inbound,
                incidents,
                _joined(consumer, inbound),
                consumer.startup.input_published,
            )
        )
        arrived: dict[str, float] = await collecting
        return arrived
    finally:
        consumer.request_stop()
        relay.stop()
        ended = await asyncio.gather(*tasks, return_exceptions=True)
        # A consumer or relay that died is the run's answer, not a silently slow figure.
        for outcome in ended:
            if isinstance(outcome, Exception):
                raise outcome


async def run(infra: BenchInfra, count: int) -> dict[str, Any]:
    incidents = max(1, min(count, int(RATE * DURATION)))
    tag = uuid.uuid4().hex[:8]
    inbound, outbound, points = f"ops.incidents.{tag}", f"loyalty.rewards.{tag}", f"pts.{tag}"
    await ensure_topics(infra.bootstrap_servers, [inbound, outbound, points], partitions=4)
    engine = create_engine(await infra.fresh_database("rewards"), pool_size=4)
    async with engine.begin() as conn:
        # Generous caps that nobody reaches: every grant still pays for the cap reads.
        await conn.execute(sa.text(_CAPS))
        await conn.execute(sa.text(_ORDERS), {"last": incidents - 1})
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, linger_ms=2)
    await producer.start()
    marks = Marks()
    relay = TracedRelay(marks, engine, producer, service="rewards-bench")
    consumer = TracedConsumer(
        marks,
        progress=Progress(incidents),
        broker=infra.broker,
        group_id=f"rewards-bench-{tag}",
        topics=[inbound, points],
        bootstrap_servers=infra.bootstrap_servers,
        engine=engine,
        registry=rewards_registry(RewardsTopics(rewards=outbound, ops=inbound)),
        after_commit=relay.wakeup.set,
        # as the service runs it (services.rewards.app)
        consumer_options={"fetch_max_wait_ms": _FETCH_MAX_WAIT_MS},
    )
    clock = PhaseClock()
    sent: dict[str, float] = {}
    try:
        with clock.patch(_hot_path_phases()), clock.process():
            arrived = await _pipeline(infra, consumer, relay, clock, (inbound, outbound), sent)
    finally:
        await producer.stop()
        await engine.dispose()
    figures = summarize(incidents, sent, arrived)
    report(figures, consumer.startup, infra.describe())
    stages = stage_figures(sent, arrived, marks)
    print_stages(stages, marks)
    phases = print_phases(f"{SECTION}: per incident", clock, incidents)
    figures["cpu_us_per_incident"] = round(sum(phases.values()), 1)
    figures.update({f"cpu_us_per_incident.{phase}": us for phase, us in phases.items()})
    for stage, (p50, p99, _) in stages.items():
        figures[f"stage.{stage.replace(' ', '_')}_p50_ms"] = round(p50, 1)
        figures[f"stage.{stage.replace(' ', '_')}_p99_ms"] = round(p99, 1)
    figures.update(consumer.startup.figures("consumer_"))
    return figures
