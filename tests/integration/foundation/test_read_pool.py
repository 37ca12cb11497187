"""The read pool (`shared.db.ReadPool`) keeps the connections it took from asyncpg's pool,
against a real PostgreSQL: never more than `size` out at once, waiting requests served in
arrival order (a cancelled wait loses nothing), a connection in a transaction or closed
never handed out again as it is, and closing the pool does not wait for its free list."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.db import ReadPool, asyncpg_dsn, create_read_pool

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(points_db: str) -> AsyncIterator[ReadPool]:
    pool = await create_read_pool(points_db, 2)
    yield pool
    await asyncio.wait_for(pool.close(), 10)


async def _backend(pool: ReadPool) -> int:
    async with pool.acquire() as conn:
        pid: int = await conn.fetchval("SELECT pg_backend_pid()")
        return pid


async def test_a_returned_connection_is_handed_out_again(pool: ReadPool) -> None:
    first = await _backend(pool)
    assert [await _backend(pool) for _ in range(5)] == [first] * 5


async def test_never_more_than_size_connections_and_waiters_served_in_order(
    pool: ReadPool,
) -> None:
    held, most, order = 0, 0, []
    release = asyncio.Event()

    async def reader(number: int) -> None:
        nonlocal held, most
        async with pool.acquire() as conn:
            held += 1
            most = max(most, held)
            order.append(number)
            if number < 2:
                await release.wait()  # the first two keep theirs until the others queue
            assert await conn.fetchval("SELECT $1::int", number) == number
            held -= 1

    tasks = [asyncio.ensure_future(reader(number)) for number in range(6)]
    await asyncio.sleep(0.2)
    assert order == [0, 1], "a third connection was taken past the pool's size"
    release.set()
    await asyncio.gather(*tasks)
    assert most == 2
    assert order == [0, 1, 2, 3, 4, 5], "waiting requests were not served in arrival order"


async def test_a_cancelled_wait_loses_no_connection(pool: ReadPool) -> None:
    release = asyncio.Event()

    async def holder() -> None:
        async with pool.acquire():
            await release.wait()

    holders = [asyncio.ensure_future(holder()) for _ in range(2)]
    await asyncio.sleep(0.05)
    cancelled = asyncio.ensure_future(_backend(pool))
    served = asyncio.ensure_future(_backend(pool))
    await asyncio.sleep(0.05)
    cancelled.cancel()
    release.set()
    await asyncio.gather(*holders)
    assert await asyncio.wait_for(served, 5) > 0
    assert cancelled.cancelled()
    # Both connections are still there for two requests at once.
    both = await asyncio.wait_for(asyncio.gather(_backend(pool), _backend(pool)), 5)
    assert all(pid > 0 for pid in both)


async def test_a_connection_left_in_a_transaction_is_not_handed_out_in_it(
    pool: ReadPool,
) -> None:
    async with pool.acquire() as conn:
        await conn.execute("BEGIN")
        await conn.execute("CREATE TEMP TABLE scratch (x int)")
        assert conn.is_in_transaction()
    for _ in range(3):
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.scratch')") is None


async def _terminate(points_db: str, pid: int) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(points_db))
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_a_connection_the_server_closed_while_in_use_is_replaced(
    pool: ReadPool, points_db: str
) -> None:
    async def sleeper() -> None:
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_sleep(30)")

    victim = await _backend(pool)
    sleeping = asyncio.ensure_future(sleeper())
    await asyncio.sleep(0.2)
    await _terminate(points_db, victim)
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        await asyncio.wait_for(sleeping, 10)
    replaced = await asyncio.wait_for(asyncio.gather(_backend(pool), _backend(pool)), 5)
    assert victim not in replaced and len(set(replaced)) == 2, replaced


async def test_a_connection_the_server_closed_while_free_is_never_handed_out(
    pool: ReadPool, points_db: str
) -> None:
    first, second = await asyncio.gather(_backend(pool), _backend(pool))
    await _terminate(points_db, first)
    await _terminate(points_db, second)
    await asyncio.sleep(0.2)  # the client reads the server's goodbye
    replaced = await asyncio.wait_for(asyncio.gather(_backend(pool), _backend(pool)), 5)
    assert not {first, second} & set(replaced) and len(set(replaced)) == 2, replaced


async def test_a_connection_handed_to_a_wait_cancelled_at_that_moment_is_not_lost(
    pool: ReadPool,
) -> None:
    held = [await pool.take(), await pool.take()]
    waiting = asyncio.ensure_future(_backend(pool))
    await asyncio.sleep(0.05)
    pool.give_back(held.pop())  # handed to the waiting request...
    waiting.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiting
    pool.give_back(held.pop())
    both = await asyncio.wait_for(asyncio.gather(_backend(pool), _backend(pool)), 5)
    assert len(set(both)) == 2, both
