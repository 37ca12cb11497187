"""The embedded pair as `make run` starts it: PostgreSQL asks for the generated password,
and a broker that cannot start takes the PostgreSQL it started down with it."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import asyncpg
import pytest

from shared.db import asyncpg_dsn
from tests.support.infra import Infra, free_port
from tooling.devinfra import EmbeddedInfra, InfraError

pytestmark = pytest.mark.integration


async def test_the_embedded_postgres_refuses_a_local_user_without_the_password(
    infra: Infra,
) -> None:
    if infra.embedded is None:
        pytest.fail("this test needs the embedded pair (no KAFKA_BOOTSTRAP_SERVERS override)")
    url = asyncpg_dsn(infra.admin_url)
    conn = await asyncpg.connect(url)  # with the password: fine
    await conn.close()
    without = url.replace(f":{infra.embedded.pg_password()}@", "@")
    assert without != url
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(without)
    wrong = url.replace(infra.embedded.pg_password(), "guess")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)


def test_a_broker_that_cannot_start_leaves_no_postgres_running() -> None:
    root = Path(tempfile.mkdtemp(prefix="loyalty-devinfra-"))
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    embedded = EmbeddedInfra(root / "var", free_port(), port, durable=False)
    try:
        with pytest.raises(InfraError, match=f"port {port} is taken"):
            embedded.up()
        assert embedded._pg_running_pid() is None, "PostgreSQL was left running"
    finally:
        taken.close()
        embedded.down()
        shutil.rmtree(root, ignore_errors=True)
