"""The database itself keeps the books honest, whatever code runs against it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from asyncpg.exceptions import ForeignKeyViolationError
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.points.accounts import repository
from services.points.accounts.repository import insert_records, wire_moment
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
        assert "follows the ledger" in await _refused(
            engine, "DO $$ BEGIN UPDATE accounts SET ledger_balance = 1000; END $$"
        ), "nor from a function that is not the ledger's trigger"
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


_LOT = (
    "INSERT INTO lots (lot_id, customer_id, source, points, earned_at, pending_until,"
    " expires_at) VALUES ('{lot}', '{customer}', 'credit', 5, now(), now(), now())"
)
_ORDER = (
    "INSERT INTO order_earnings (order_id, customer_id, merchant_id, event_id, occurred_at,"
    " currency, amount_minor, spend_minor, points, lot_id, settles_at) VALUES ('{order}',"
    " '{customer}', 'm-1', gen_random_uuid(), now(), 'EUR', 100, 100, 5, {lot}, now())"
)
_LINE = (
    "INSERT INTO ledger (customer_id, kind, points, reference, occurred_at)"
    " VALUES ('{customer}', 'credit', 5, '{reference}', now())"
)
_LOT_1 = "00000000-0000-4000-8000-000000000001"
_LOT_2 = "00000000-0000-4000-8000-000000000002"
_NO_LOT = "00000000-0000-4000-8000-0000000000ff"


async def test_books_name_existing_accounts_and_lots(points_db: str) -> None:
    """The foreign keys of lots, ledger lines and orders, checked once per statement
    (points_0008): a row naming a missing account or lot is refused under the key's name,
    among other rows, by INSERT and by COPY, and on an update of the key; the accounts and
    lots named are never deleted nor re-keyed."""
    engine = create_engine(points_db, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO accounts (customer_id) VALUES ('ola')"))
            await conn.execute(sa.text(_LOT.format(lot=_LOT_1, customer="ola")))
            await conn.execute(
                sa.text(_ORDER.format(order="o-1", customer="ola", lot=f"'{_LOT_1}'"))
            )
            await conn.execute(sa.text(_LINE.format(customer="ola", reference="c-1")))
        refusals = {
            "fk_lots_customer_id_accounts": _LOT.format(lot=_LOT_2, customer="kai"),
            "fk_ledger_customer_id_accounts": _LINE.format(customer="kai", reference="c-2"),
            "fk_order_earnings_customer_id_accounts": _ORDER.format(
                order="o-2", customer="kai", lot="NULL"
            ),
            "fk_order_earnings_lot_id_lots": _ORDER.format(
                order="o-3", customer="ola", lot=f"'{_NO_LOT}'"
            ),
            # one bad row among good ones
            "fk_lots_customer_id_accounts ": (
                "INSERT INTO lots (lot_id, customer_id, source, points, earned_at,"
                " pending_until, expires_at) SELECT gen_random_uuid(), c, 'credit', 5, now(),"
                " now(), now() FROM unnest(ARRAY['ola', 'ola', 'kai', 'ola']) AS c"
            ),
            "fk_lots_customer_id_accounts  ": (
                f"UPDATE lots SET customer_id = 'kai' WHERE lot_id = '{_LOT_1}'"
            ),
            "fk_order_earnings_customer_id_accounts ": (
                "UPDATE order_earnings SET customer_id = 'kai' WHERE order_id = 'o-1'"
            ),
            "fk_order_earnings_lot_id_lots ": (
                f"UPDATE order_earnings SET lot_id = '{_NO_LOT}' WHERE order_id = 'o-1'"
            ),
        }
        for constraint, statement in refusals.items():
            error = await _refused(engine, statement)
            assert f'foreign key constraint "{constraint.strip()}"' in error, statement
        for statement in (
            "DELETE FROM accounts WHERE customer_id = 'ola'",
            "UPDATE accounts SET customer_id = 'ola-2' WHERE customer_id = 'ola'",
            "TRUNCATE accounts CASCADE",
            f"DELETE FROM lots WHERE lot_id = '{_LOT_1}'",
            f"UPDATE lots SET lot_id = '{_LOT_2}' WHERE lot_id = '{_LOT_1}'",
            "TRUNCATE lots CASCADE",
        ):
            assert "stay" in await _refused(engine, statement), statement
        async with engine.begin() as conn:  # what the keys allow stays allowed
            await conn.execute(sa.text("UPDATE order_earnings SET lot_id = NULL"))
            await conn.execute(sa.text("INSERT INTO accounts (customer_id) VALUES ('kai')"))
            await conn.execute(sa.text("UPDATE lots SET customer_id = 'kai', redeemed = 1"))
        async with engine.connect() as conn:
            kept = await conn.execute(sa.text("SELECT count(*) FROM lots WHERE redeemed = 1"))
            assert kept.scalar_one() == 1
    finally:
        await engine.dispose()


async def test_copied_rows_name_existing_accounts(points_db: str) -> None:
    """The accrual writes by COPY (`insert_records`): the per-statement key checks fire
    for it as for INSERT."""
    engine = create_engine(points_db, pool_size=1)
    columns = ("customer_id", "kind", "points", "reference", "occurred_at")
    moment = datetime(2026, 12, 7, tzinfo=UTC)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO accounts (customer_id) VALUES ('ola')"))
        with pytest.raises(ForeignKeyViolationError, match="fk_ledger_customer_id_accounts"):
            async with engine.begin() as conn:
                await insert_records(
                    conn,
                    "ledger",
                    columns,
                    [("ola", "credit", 5, "c-1", moment), ("kai", "credit", 5, "c-2", moment)],
                )
        async with engine.begin() as conn:
            await insert_records(conn, "ledger", columns, [("ola", "credit", 5, "c-1", moment)])
            balance = await conn.scalar(sa.text("SELECT ledger_balance FROM accounts"))
        assert balance == 5
    finally:
        await engine.dispose()


async def test_copied_wire_moments_are_the_same_instants(
    points_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moments copied as `wire_moment`s (the accrual's lots, orders and ledger lines) are
    stored as the instants the datetimes name: any zone, microseconds, before 2000, and
    as the driver's own codec stores them (also the way taken without the driver's
    internals)."""
    engine = create_engine(points_db, pool_size=1)
    columns = ("customer_id", "kind", "points", "reference", "occurred_at")
    moments = [
        datetime(2026, 12, 7, 13, 5, 9, 123457, tzinfo=UTC),
        datetime(2026, 3, 29, 3, 30, 0, 1, tzinfo=ZoneInfo("Europe/Berlin")),
        datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=ZoneInfo("America/St_Johns")),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
        datetime(2299, 1, 1, 0, 0, 0, 7, tzinfo=UTC),
    ]
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO accounts (customer_id) VALUES ('ola')"))
            await insert_records(
                conn,
                "ledger",
                columns,
                [("ola", "credit", 5, f"w-{i}", wire_moment(m)) for i, m in enumerate(moments)],
                moments={"occurred_at"},
            )
            await insert_records(
                conn,
                "ledger",
                columns,
                [("ola", "credit", 5, f"d-{i}", m) for i, m in enumerate(moments)],
            )
            monkeypatch.setattr(repository, "_WIRE_MOMENTS", False)
            await insert_records(
                conn,
                "ledger",
                columns,
                [("ola", "credit", 5, f"f-{i}", wire_moment(m)) for i, m in enumerate(moments)],
                moments={"occurred_at"},
            )
            rows = (await conn.execute(sa.text("SELECT reference, occurred_at FROM ledger"))).all()
        stored: dict[str, datetime] = {row[0]: row[1] for row in rows}
        assert [stored[f"w-{i}"] for i in range(len(moments))] == moments
        for prefix in ("d", "f"):
            assert [stored[f"w-{i}"] for i in range(len(moments))] == [
                stored[f"{prefix}-{i}"] for i in range(len(moments))
            ]
        with pytest.raises(TypeError):
            wire_moment(datetime(2026, 12, 7))  # a naive datetime names no instant
    finally:
        await engine.dispose()
