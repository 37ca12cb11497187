"""The rewards consumer plans each batch's statements for that batch's arrays.

PostgreSQL may keep one generic plan for a prepared statement, costed on the table as it
was when the plan was made: a breach read planned on an empty table kept its sequential
scan while the table grew (`python -m bench rewards`). Every rewards consumer transaction
therefore asks for custom plans, and only that transaction: HTTP requests on the same
pooled connections keep the server's default.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from services.rewards.handlers import rewards_registry
from shared.db import create_engine
from shared.kafka.handlers import BatchContext
from shared.outbox import OutboxWriter

pytestmark = pytest.mark.integration

_SETTING = sa.text("SELECT current_setting('plan_cache_mode')")


async def test_a_consumer_batch_plans_for_its_own_arrays(rewards_db: str) -> None:
    engine = create_engine(rewards_db, pool_size=1)
    handler = rewards_registry().handlers["service.incident"]
    try:
        async with engine.connect() as conn:
            async with conn.begin():
                assert await conn.scalar(_SETTING) == "auto"
                ctx = BatchContext(conn=conn, outbox=OutboxWriter(), now=datetime.now(UTC))
                await handler(ctx, [])
                assert await conn.scalar(_SETTING) == "force_custom_plan"
                await handler(ctx, [])  # a second event type in the batch: set once
                assert await conn.scalar(_SETTING) == "force_custom_plan"
            async with conn.begin():  # the next transaction on the pooled connection
                assert await conn.scalar(_SETTING) == "auto"
    finally:
        await engine.dispose()
