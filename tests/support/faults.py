"""Faults the integration tests inject."""

from __future__ import annotations

import asyncio

import asyncpg

from shared.db import asyncpg_dsn
from tests.support.infra import Infra


async def postgres_outage(infra: Infra, db_url: str) -> None:
    """PostgreSQL goes away for a while, then comes back."""
    if infra.embedded is not None:
        await asyncio.to_thread(infra.embedded.stop_postgres)
        await asyncio.sleep(3)
        await asyncio.to_thread(infra.embedded.start_postgres)
        return
    # External or container PostgreSQL cannot be stopped from here: cut every session.
    conn = await asyncpg.connect(asyncpg_dsn(infra.admin_url))
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            db_url.rsplit("/", 1)[1],
        )
    finally:
        await conn.close()
