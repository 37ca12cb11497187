"""The database itself keeps the books honest, whatever code runs against it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.points.db import metadata
from shared.db import create_engine, foundation
from tests.support.schema_drift import schema_drift

pytestmark = pytest.mark.integration


async def test_migration_creates_what_the_code_queries(points_db: str) -> None:
    """services/points/db.py and the foundation tables (api_keys, outbox, processed_events,
    dead_letters) against a database migrated to the points head."""
    differences = await schema_drift(points_db, metadata, foundation)
    assert differences == [], "services/points/db.py and the points migrations disagree:\n" + (
        "\n".join(differences)
    )


async def _refused(engine: AsyncEngine, statement: str) -> str:
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(statement))
    except (DBAPIError, IntegrityError) as error:
        return str(error.orig)
    raise AssertionError(f"the database accepted: {statement}")


async def test_ledger_is_append_only_and_balances_follow_it(points_db: str) -> None:
    engine = create_engine(points_db, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO accounts (customer_id) VALUES ('ola')"))
            await conn.execute(
                sa.text(
                    "INSERT INTO ledger (customer_id, kind, points, reference, occurred_at)"
                    " VALUES ('ola', 'accrual', 10, 'o-1', now()),"
                    " ('ola', 'credit', 5, 'c-1', now())"
                )
            )
        async with engine.connect() as conn:
            balance = await conn.scalar(
                sa.text("SELECT ledger_balance FROM accounts WHERE customer_id = 'ola'")
            )
        assert balance == 15, "the account balance is the sum of its ledger entries"
        assert "append-only" in await _refused(engine, "UPDATE ledger SET points = 99")
        assert "append-only" in await _refused(engine, "DELETE FROM ledger")
        assert "append-only" in await _refused(engine, "TRUNCATE ledger")
        assert "follows the ledger" in await _refused(
            engine, "UPDATE accounts SET ledger_balance = 1000"
        )
        assert "uq_ledger_kind_reference" in await _refused(
            engine,
            "INSERT INTO ledger (customer_id, kind, points, reference, occurred_at)"
            " VALUES ('ola', 'accrual', 10, 'o-1', now())",
        ), "an originating reference applies once"
        assert "negative" in await _refused(
            engine,
            "INSERT INTO ledger (customer_id, kind, points, reference, occurred_at)"
            " VALUES ('ola', 'redemption', -16, 'r-1', now())",
        ), "a redemption may not take the balance below zero"
        assert "ck_ledger_sign_matches_kind" in await _refused(
            engine,
            "INSERT INTO ledger (customer_id, kind, points, reference, occurred_at)"
            " VALUES ('ola', 'expiry', 3, 'x-1', now())",
        ), "an expiry cannot add points"
        assert "ck_lots_counters_within_points" in await _refused(
            engine,
            "INSERT INTO lots (lot_id, customer_id, source, points, redeemed, earned_at,"
            " pending_until, expires_at) VALUES (gen_random_uuid(), 'ola', 'credit', 5, 6,"
            " now(), now(), now())",
        ), "a lot never gives more than it holds"
    finally:
        await engine.dispose()
