"""Scale-out and recovery on each embedded broker, with real `python -m services.points`
processes.

- recovery: one points instance consumes a steady stream (~400 events/s); it is
  SIGKILLed and started again at once. Printed: kill -> /readyz again, and kill -> the
  first batch committed after the restart (processed_events grows again). On Apache
  Kafka also with static membership (KAFKA_GROUP_INSTANCE_ID), where the restarted
  instance takes its partitions back without waiting for the session to expire.
- scale-out: accrual of N purchases by 1, 2 and 4 instances in one group on an
  8-partition topic (all published first, timed from the first batch committed to the
  last event applied, counting the events applied after that first batch), and the
  largest peak resident memory of an instance (the kernel's VmHWM, read before it stops).

Each broker gets its own private PostgreSQL + broker pair (bench.infra), so the figures
of Tansu and Apache Kafka come from the same code on the same machine.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import asyncpg
import httpx

from bench.infra import BenchInfra, embedded_infra, free_port, process_peak_rss_mib
from bench.workload import Purchases, make_purchases, produce
from shared.db import asyncpg_dsn
from shared.kafka.admin import ensure_topics

SECTION = "scaleout"
PARTITIONS = 8
BROKERS = ("tansu", "kafka")
INSTANCES = (1, 2, 4)


def _start(
    infra: BenchInfra, url: str, topics: dict[str, str], extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        **topics,
        **(extra or {}),
        "POINTS_DATABASE_URL": url,
        "POINTS_HTTP_PORT": str(port),
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "POINTS_DB_POOL_SIZE": "4",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.points"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, port


async def _ready(port: int, process: subprocess.Popen[bytes], patience: float = 90) -> None:
    deadline = time.perf_counter() + patience
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"points exited with {process.returncode}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError("points was not ready in time")


async def _applied(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM processed_events"))


async def _until_applied(conn: asyncpg.Connection, above: int, interval: float = 0.02) -> int:
    """Poll until more than `above` events are applied; returns the count seen."""
    while True:
        count = await _applied(conn)
        if count > above:
            return count
        await asyncio.sleep(interval)


async def _fresh(infra: BenchInfra, tag: str) -> tuple[str, dict[str, str]]:
    unique = uuid.uuid4().hex[:8]
    topics = {
        "POINTS_CONSUMER_GROUP": f"points-{tag}-{unique}",
        "POINTS_PURCHASES_TOPIC": f"pos.purchases.{tag}.{unique}",
        "POINTS_REWARDS_TOPIC": f"loyalty.rewards.{tag}.{unique}",
        "POINTS_POINTS_TOPIC": f"loyalty.points.{tag}.{unique}",
    }
    await ensure_topics(
        infra.bootstrap_servers,
        [*list(topics.values())[1:], f"{topics['POINTS_CONSUMER_GROUP']}.dlq"],
        PARTITIONS,
    )
    return await infra.fresh_database("points"), topics


async def _trickle(infra: BenchInfra, topic: str, purchases: Purchases, rate: float) -> None:
    """Publish `purchases` at about `rate` per second, in slices of 50."""
    step = 50
    for start in range(0, len(purchases), step):
        part = Purchases(
            purchases.keys[start : start + step],
            purchases.values[start : start + step],
            purchases.event_ids[start : start + step],
            purchases.customers[start : start + step],
            purchases.amounts_minor[start : start + step],
        )
        await produce(infra.bootstrap_servers, topic, part, PARTITIONS)
        await asyncio.sleep(step / rate)


async def measure_recovery(infra: BenchInfra, static: bool) -> dict[str, float]:
    url, topics = await _fresh(infra, "recovery")
    extra = {"KAFKA_GROUP_INSTANCE_ID": "bench-1"} if static else {}
    process, port = _start(infra, url, topics, extra)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    purchases = make_purchases(40_000, seed=11)
    feeder: asyncio.Task[None] | None = None
    try:
        await _ready(port, process)
        feeder = asyncio.create_task(
            _trickle(infra, topics["POINTS_PURCHASES_TOPIC"], purchases, 400)
        )
        await _until_applied(conn, 2_000, 0.1)  # the group formed and work flows
        process.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        process.wait()
        at_kill = await _applied(conn)
        process, port = _start(infra, url, topics, extra)
        await _ready(port, process)
        ready = time.perf_counter() - killed
        await _until_applied(conn, at_kill)
        first_commit = time.perf_counter() - killed
        return {"ready_s": round(ready, 2), "first_commit_s": round(first_commit, 2)}
    finally:
        if feeder is not None:
            feeder.cancel()
        process.kill()
        process.wait()
        await conn.close()


async def measure_accrual(
    infra: BenchInfra, instances: int, count: int
) -> tuple[float, float | None]:
    """Events applied per second, and the largest instance's peak memory in MiB."""
    url, topics = await _fresh(infra, f"scale{instances}")
    purchases = make_purchases(count, seed=3)
    await produce(infra.bootstrap_servers, topics["POINTS_PURCHASES_TOPIC"], purchases, PARTITIONS)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    started = [_start(infra, url, topics) for _ in range(instances)]
    try:
        await asyncio.gather(*(_ready(port, process) for process, port in started))
        # From the first batch committed (after the group join), counting only what was
        # applied after it: with batches of 8,000, a count that includes the first batch
        # would credit the instances with a batch done before the clock started.
        first = await _until_applied(conn, 0)
        began = time.perf_counter()
        await _until_applied(conn, count - 1, 0.1)
        rate = (count - first) / (time.perf_counter() - began)
        peaks = [process_peak_rss_mib(process.pid) for process, _ in started]
        known = [peak for peak in peaks if peak is not None]
        return rate, max(known) if known else None
    finally:
        for process, _ in started:
            process.kill()
            process.wait()
        await conn.close()


async def _on(broker: str, durable: bool, events: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with embedded_infra(durable, broker=broker) as infra:
        print(f"  {infra.describe()}")
        for instances in INSTANCES:
            rate, peak = await measure_accrual(infra, instances, events)
            figures[f"accrual_{instances}_instances_events_per_s"] = round(rate)
            memory = ""
            if peak is not None:
                figures[f"accrual_{instances}_instances_peak_rss_mib"] = round(peak)
                memory = f", peak memory {peak:,.0f} MiB (the largest instance)"
            print(f"  {broker}: accrual with {instances} instance(s): {rate:,.0f} events/s{memory}")
        for static in (False, True) if broker == "kafka" else (False,):
            recovery = await measure_recovery(infra, static)
            label = "static" if static else "dynamic"
            figures[f"recovery_{label}_ready_s"] = recovery["ready_s"]
            figures[f"recovery_{label}_first_commit_s"] = recovery["first_commit_s"]
            print(
                f"  {broker} ({label} membership): SIGKILL -> ready {recovery['ready_s']:.1f} s,"
                f" -> first commit {recovery['first_commit_s']:.1f} s"
            )
    return figures


async def run(infra: BenchInfra, events: int) -> dict[str, Any]:
    """Both brokers, whatever broker `infra` runs (it is not used: each gets its own)."""
    count = min(events, 60_000)  # several batches of 8,000 per instance, even with 4
    result: dict[str, Any] = {}
    for broker in BROKERS:
        for name, value in (await _on(broker, infra.durable, count)).items():
            result[f"{broker}_{name}"] = value
    return result
