"""The lock protocol holds whatever statement a unit of work starts with: an account locked
by `lock` or `lock_if_free` stays locked by that transaction until it ends, so no other
writer can change the customer's lots in between."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from services.points.uow import PointsUnitOfWork
from shared.db import asyncpg_dsn, create_engine

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, tzinfo=UTC)
_TAKE_NOW = "SELECT customer_id FROM accounts WHERE customer_id = $1 FOR UPDATE NOWAIT"


async def _someone_else_can_lock(other: asyncpg.Connection, customer_id: str) -> bool:
    try:
        async with other.transaction():
            return bool(await other.fetchval(_TAKE_NOW, customer_id) == customer_id)
    except asyncpg.LockNotAvailableError:
        return False


async def test_an_account_locked_first_thing_stays_locked_until_the_unit_of_work_ends(
    points_db: str,
) -> None:
    engine = create_engine(points_db, pool_size=2)
    other = await asyncpg.connect(asyncpg_dsn(points_db))
    try:
        async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
            await uow.accounts.lock(["kim", "lee"])  # opens both accounts
        assert await _someone_else_can_lock(other, "kim"), "committed: nobody holds kim"
        async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
            assert set(await uow.accounts.lock(["kim"])) == {"kim"}
            assert not await _someone_else_can_lock(other, "kim"), (
                "a redemption could change kim's lots while this unit of work holds them"
            )
        async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
            assert set(await uow.accounts.lock_if_free(["lee"])) == {"lee"}
            assert not await _someone_else_can_lock(other, "lee"), (
                "a job's claim on lee's account ended before its unit of work did"
            )
            async with PointsUnitOfWork.begin(engine, lambda: NOW) as second:
                assert set(await second.accounts.lock_if_free(["kim", "lee"])) == {"kim"}, (
                    "a second job must take the free kim and skip lee, whom the first holds"
                )
        assert await _someone_else_can_lock(other, "kim")
        assert await _someone_else_can_lock(other, "lee")
    finally:
        await other.close()
        await engine.dispose()


async def test_two_units_of_work_opening_the_same_new_account_both_get_it_once(
    points_db: str,
) -> None:
    """The second opener of a new account, racing the first, waits for it and gets the
    account the first created: the anti-join before the insert cannot see an account
    inserted by a transaction still open, so ON CONFLICT must catch it."""
    engine = create_engine(points_db, pool_size=2)
    watcher = await asyncpg.connect(asyncpg_dsn(points_db))
    try:
        async with PointsUnitOfWork.begin(engine, lambda: NOW) as first:
            assert set(await first.accounts.lock(["noa"])) == {"noa"}  # inserted, uncommitted

            async def second_opener() -> set[str]:
                async with PointsUnitOfWork.begin(engine, lambda: NOW) as second:
                    return set(await second.accounts.lock(["noa"]))

            second = asyncio.create_task(second_opener())
            # Proven waiting, not merely slow: its statement is blocked on a lock.
            for _ in range(200):
                waiting = await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO accounts%'"
                )
                if waiting:
                    break
                await asyncio.sleep(0.05)
            assert waiting == 1, "the second opener should wait for the first's new account"
            assert not second.done()
        assert await second == {"noa"}
        count = await watcher.fetchval("SELECT count(*) FROM accounts WHERE customer_id = 'noa'")
        assert count == 1
    finally:
        await watcher.close()
        await engine.dispose()
