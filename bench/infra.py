"""A private embedded PostgreSQL + broker pair for one benchmark run (LOYALTY_BROKER).

Free ports and a temporary directory, so a benchmark never touches the dev
stack in ./var nor another run; everything is stopped and removed at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from shared.db import asyncpg_dsn
from tooling.devinfra import EmbeddedInfra, broker_from_environment
from tooling.migrate import upgrade


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


BROKER_NAMES = {
    "tansu": "Tansu broker (in-memory storage)",
    "kafka": "Apache Kafka broker (KRaft, one node)",
}


@dataclass(frozen=True)
class BenchInfra:
    bootstrap_servers: str
    admin_url: str  # SQLAlchemy URL of the `postgres` database
    pg_port: int
    durable: bool
    root: Path
    broker: str = "tansu"
    pg_pid: int | None = None  # the postmaster: its children are the backends
    broker_pid: int | None = None

    def database_url(self, name: str) -> str:
        return f"{self.admin_url.rsplit('/', 1)[0]}/{name}"

    def describe(self) -> str:
        durability = (
            "durable (fsync=on, synchronous_commit=on, full_page_writes=on)"
            if self.durable
            else "NOT durable (fsync=off, synchronous_commit=off, full_page_writes=off)"
        )
        return (
            f"embedded PostgreSQL on 127.0.0.1:{self.pg_port}, {durability}; "
            f"{BROKER_NAMES[self.broker]} on {self.bootstrap_servers}; dir {self.root}"
        )

    async def fresh_database(self, service: str = "points") -> str:
        """A new database migrated to head with `service`'s Alembic migrations."""
        name = f"bench_{service}_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(asyncpg_dsn(self.admin_url))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        url = self.database_url(name)
        await asyncio.to_thread(upgrade, service, url)
        return url


def process_cpu_seconds(pid: int | None) -> float:
    """CPU seconds (user + system) of process `pid` and its direct children, live or ended
    (the ones it has waited for), read from /proc: a uvicorn server and its workers, or
    PostgreSQL's postmaster and its backends, which end when the benchmark's pool closes
    (NaN without a pid)."""
    if pid is None:
        return float("nan")
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # a process that ended while being read
        process, parent = int(stat.parent.name), int(fields[1])
        if process == pid:  # utime, stime, and those of its children that ended
            ticks += sum(int(field) for field in fields[11:15])
        elif parent == pid:  # utime, stime
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def process_peak_rss_mib(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of process `pid` in MiB, None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


@contextmanager
def embedded_infra(durable: bool, broker: str | None = None) -> Iterator[BenchInfra]:
    root = Path(tempfile.mkdtemp(prefix="loyalty-bench-"))
    broker = broker or broker_from_environment()
    embedded = EmbeddedInfra(
        root,
        free_port(),
        free_port(),
        durable=durable,
        broker=broker,
        controller_port=free_port() if broker == "kafka" else None,
    )
    try:
        state = embedded.up()
        yield BenchInfra(
            bootstrap_servers=state.bootstrap_servers,
            admin_url=state.database_url("postgres"),
            pg_port=state.pg_port,
            durable=durable,
            root=embedded.root,
            broker=broker,
            pg_pid=state.pg_pid,
            broker_pid=state.kafka_pid,
        )
    finally:
        try:
            embedded.down()
        finally:
            shutil.rmtree(root, ignore_errors=True)
