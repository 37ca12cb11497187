"""`merchant_month_grants`, what the merchant budget caps read, always equals the sum of the
merchant's granted compensations per UTC month, whatever statement wrote them: a multi-row
INSERT, a COPY (the consumer's batches), an approval, a changed amount, a grant moved to
another month, a rejection, a DELETE, a TRUNCATE (rewards_0008's statement triggers)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import create_engine, transaction_driver

pytestmark = pytest.mark.integration

NOVEMBER, DECEMBER = datetime(2026, 11, 30, 23, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
BREACH = (
    "INSERT INTO breaches (breach_key, customer_id, merchant_id, order_id, promise_kind,"
    " currency, order_amount_minor, worst_value, worst_unit, first_seen_at, updated_at)"
    " VALUES (:key, 'cu', :merchant, :key, 'dish_wait_time', 'EUR', 4000, 12, 'minutes',"
    " :at, :at)"
)
KEPT = (
    "SELECT merchant_id, month, money_minor, points FROM merchant_month_grants"
    " WHERE money_minor <> 0 OR points <> 0 ORDER BY 1, 2"
)
SUMMED = (
    "SELECT merchant_id, date_trunc('month', timezone('UTC', decided_at)),"
    " sum(refund_minor + voucher_value_minor), sum(points) FROM compensations"
    " WHERE status = 'granted' GROUP BY 1, 2"
    " HAVING sum(refund_minor + voucher_value_minor) <> 0 OR sum(points) <> 0 ORDER BY 1, 2"
)


def compensation(key: str, merchant: str, tier: int, status: str, **values: Any) -> dict[str, Any]:
    decided = None if status == "in_review" else values.pop("decided_at", DECEMBER)
    return {
        "compensation_id": uuid.uuid4(),
        "breach_key": key,
        "tier": tier,
        "customer_id": "cu",
        "merchant_id": merchant,
        "order_id": key,
        "promise_kind": "dish_wait_time",
        "currency": "EUR",
        "new_breach": tier == 1,
        "status": status,
        "trigger": "incident",
        "trigger_ref": f"incident:{key}:{tier}",
        "created_at": NOVEMBER,
        "decided_at": decided,
        "refund_minor": values.get("refund_minor", 0),
        "voucher_value_minor": values.get("voucher_value_minor", 0),
        "points": values.get("points", 0),
    }


INSERT = sa.text(
    "INSERT INTO compensations (compensation_id, breach_key, tier, customer_id, merchant_id,"
    " order_id, promise_kind, currency, new_breach, status, trigger, trigger_ref, created_at,"
    " decided_at, refund_minor, voucher_value_minor, points) VALUES (:compensation_id,"
    " :breach_key, :tier, :customer_id, :merchant_id, :order_id, :promise_kind, :currency,"
    " :new_breach, :status, :trigger, :trigger_ref, :created_at, :decided_at, :refund_minor,"
    " :voucher_value_minor, :points)"
)


@pytest.fixture
async def engine(rewards_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(rewards_db, pool_size=1)
    yield engine
    await engine.dispose()


async def kept_equals_summed(conn: AsyncConnection) -> list[Any]:
    kept = [tuple(row) for row in await conn.execute(sa.text(KEPT))]
    assert kept == [tuple(row) for row in await conn.execute(sa.text(SUMMED))]
    return kept


async def test_the_month_totals_follow_every_kind_of_write(engine: AsyncEngine) -> None:
    keys = [f"b{n}" for n in range(80)]
    async with engine.begin() as conn:
        for n, key in enumerate(keys):
            await conn.execute(
                sa.text(BREACH), {"key": key, "merchant": f"m{n % 2}", "at": NOVEMBER}
            )
        # A multi-row INSERT: granted in two months, one held, one rejected.
        await conn.execute(
            INSERT,
            [
                compensation("b0", "m0", 1, "granted", refund_minor=500, points=10),
                compensation("b1", "m1", 1, "granted", voucher_value_minor=800),
                compensation("b2", "m0", 1, "granted", refund_minor=300, decided_at=NOVEMBER),
                compensation("b4", "m0", 1, "in_review", refund_minor=700),
                compensation("b6", "m0", 1, "rejected", refund_minor=900),
            ],
        )
        kept = await kept_equals_summed(conn)
        assert kept == [
            ("m0", NOVEMBER.replace(day=1, hour=0, minute=0, tzinfo=None), 300, 0),
            ("m0", DECEMBER.replace(tzinfo=None), 500, 10),
            ("m1", DECEMBER.replace(tzinfo=None), 800, 0),
        ]
        # A COPY, as a consumer batch writes its compensations.
        copied = [
            compensation(key, f"m{n % 2}", 1, "granted", refund_minor=n, points=1)
            for n, key in enumerate(keys[8:], start=8)
        ]
        driver = await transaction_driver(conn)
        columns = list(copied[0])
        await driver.copy_records_to_table(
            "compensations", records=[tuple(c.values()) for c in copied], columns=columns
        )
        kept = await kept_equals_summed(conn)
        assert kept[1][2:] == (500 + sum(range(8, 80, 2)), 10 + 36)
    async with engine.begin() as conn:  # the statements an admin's decisions and SQL make
        await conn.execute(
            sa.text(
                "UPDATE compensations SET status = 'granted', decided_at = :at"
                " WHERE breach_key = 'b4'"
            ),
            {"at": DECEMBER},
        )
        await kept_equals_summed(conn)
        await conn.execute(
            sa.text("UPDATE compensations SET refund_minor = 1 WHERE breach_key = 'b0'")
        )
        await kept_equals_summed(conn)
        await conn.execute(
            sa.text("UPDATE compensations SET decided_at = :at WHERE breach_key = 'b1'"),
            {"at": NOVEMBER},
        )
        await kept_equals_summed(conn)
        await conn.execute(
            sa.text("UPDATE compensations SET status = 'rejected' WHERE breach_key = 'b2'")
        )
        await kept_equals_summed(conn)
        # No amount moved: no total touched.
        await conn.execute(sa.text("UPDATE compensations SET decision_note = 'x'"))
        await kept_equals_summed(conn)
        await conn.execute(sa.text("DELETE FROM compensations WHERE breach_key IN ('b8', 'b9')"))
        # m0's November held only b2's grant, rejected above.
        assert len(await kept_equals_summed(conn)) == 3
    async with engine.begin() as conn:
        await conn.execute(sa.text("TRUNCATE compensations CASCADE"))
        assert await kept_equals_summed(conn) == []
        assert await conn.scalar(sa.text("SELECT count(*) FROM merchant_month_grants")) == 0


async def test_a_rolled_back_write_leaves_the_totals_as_they_were(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(BREACH), {"key": "b0", "merchant": "m0", "at": NOVEMBER})
        await conn.execute(INSERT, [compensation("b0", "m0", 1, "granted", refund_minor=500)])
    async with engine.connect() as conn:
        async with conn.begin() as transaction:
            await conn.execute(INSERT, [compensation("b0", "m0", 2, "granted", refund_minor=70)])
            assert (await kept_equals_summed(conn))[0][2] == 570
            await transaction.rollback()
        async with conn.begin():
            assert (await kept_equals_summed(conn))[0][2] == 500
