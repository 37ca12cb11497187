"""Test infrastructure: one broker and one PostgreSQL per test session.

Chosen in this order: (1) the environment names them (KAFKA_BOOTSTRAP_SERVERS and
LOYALTY_ADMIN_DATABASE_URL); (2) testcontainers when a Docker engine answers;
(3) the embedded pair (what CI uses here: these machines have no Docker engine), with
the broker LOYALTY_BROKER names: `tansu` (default) or `kafka` (Apache Kafka, KRaft).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from shared.db import asyncpg_dsn
from shared.settings import asyncpg_url
from tooling.devinfra import EmbeddedInfra, broker_from_environment
from tooling.migrate import upgrade


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@dataclass
class Infra:
    bootstrap_servers: str
    admin_url: str  # postgresql+asyncpg URL of a database we may CREATE DATABASE from
    mode: str
    embedded: EmbeddedInfra | None = None
    _closers: list[Any] = field(default_factory=list)

    def database_url(self, name: str) -> str:
        base = self.admin_url.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def close(self) -> None:
        for close in reversed(self._closers):
            close()


@contextmanager
def start_test_infra(workdir: Path) -> Iterator[Infra]:
    env_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    env_db = os.environ.get("LOYALTY_ADMIN_DATABASE_URL")
    if env_kafka and env_db:
        yield Infra(env_kafka, asyncpg_url(env_db), "external")
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with (
            PostgresContainer("postgres:16-alpine") as pg,
            KafkaContainer("confluentinc/cp-kafka:7.6.1") as kafka,
        ):
            url = pg.get_connection_url().replace("postgresql+psycopg2", "postgresql+asyncpg")
            yield Infra(kafka.get_bootstrap_server(), asyncpg_url(url), "containers")
        return
    broker = broker_from_environment()
    # Outside pytest's own temporary tree: PostgreSQL runs as another system user when the
    # tests run as root, and pytest narrows `pytest-of-<user>` to 0700 whenever another
    # session starts, which would lock PostgreSQL out of its data mid-run.
    root = Path(tempfile.mkdtemp(prefix="loyalty-test-"))
    embedded = EmbeddedInfra(
        root / "infra",
        free_port(),
        free_port(),
        durable=False,
        broker=broker,
        controller_port=free_port() if broker == "kafka" else None,
    )
    state = embedded.up()
    try:
        yield Infra(
            state.bootstrap_servers,
            state.database_url("postgres"),
            f"embedded-{broker}",
            embedded=embedded,
        )
    finally:
        embedded.down()
        shutil.rmtree(root, ignore_errors=True)


class Databases:
    """Fresh databases per test, copied from a migrated template per service."""

    def __init__(self, infra: Infra) -> None:
        self.infra = infra
        self.templates: dict[str, str] = {}

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(asyncpg_dsn(self.infra.admin_url))

    async def template(self, service: str) -> str:
        if service not in self.templates:
            name = f"tpl_{service}_{uuid.uuid4().hex[:8]}"
            conn = await self._admin()
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
            import asyncio

            await asyncio.to_thread(upgrade, service, self.infra.database_url(name))
            self.templates[service] = name
        return self.templates[service]

    async def fresh(self, service: str) -> str:
        """A new migrated database for `service`; returns its asyncpg URL."""
        template = await self.template(service)
        name = f"t_{service}_{uuid.uuid4().hex[:12]}"
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        finally:
            await conn.close()
        return self.infra.database_url(name)
