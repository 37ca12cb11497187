"""A run's new lots and orders written while the rest of the run computes
(`accrual.service.EarlyWrites`) leave the database exactly as one save at the end does,
and a run that fails with such a write in flight rolls everything back and hands a clean
connection back to the pool.

The books are the same in two fresh databases: lots pending and available, a customer in
debt (new points repay it from the run's new lots), a return parked for an order of the
run (it claws back from that order's lot), a purchase dated after NOW, several purchases of
one customer and newcomers. The same run is applied once written early, two orders at a
time, and once with no early write; every row of every table must be the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.points.accrual import service as accrual
from services.points.accrual.repository import OrderRepository
from services.points.accrual.service import accrue_purchases
from services.points.domain.book import StoredOrder
from services.points.returns.service import apply_returns
from services.points.uow import PointsUnitOfWork
from shared.contracts.pos import PurchaseCompleted, PurchaseReturned
from shared.contracts.registry import decode_event
from shared.db import asyncpg_dsn, create_engine
from shared.errors import RejectedEvent
from tests.integration.points.helpers import purchase, returned
from tests.support.infra import Databases

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOPIC = "loyalty.points"


def _purchase(
    customer: str, order_id: str, amount: str, at: datetime, **kwargs: Any
) -> PurchaseCompleted:
    event = decode_event(purchase(customer, order_id, amount, at, **kwargs))
    assert isinstance(event, PurchaseCompleted)
    return event


def _return(customer: str, order_id: str, refunded: str, at: datetime) -> PurchaseReturned:
    event = decode_event(returned(customer, order_id, f"r-{order_id}", refunded, at))
    assert isinstance(event, PurchaseReturned)
    return event


SEEDED = [
    _purchase("ann", "seed-1", "30.00", NOW - timedelta(days=4)),
    _purchase("ann", "seed-2", "20.00", NOW - timedelta(days=20)),
    _purchase("bob", "seed-3", "90.00", NOW - timedelta(days=2)),  # bob owes points below
    _purchase("dan", "seed-4", "70.00", datetime(2026, 2, 20, tzinfo=UTC)),
    _purchase("fay", "seed-5", "40.00", NOW - timedelta(days=30)),
]
# A return of the run's order `run-fay`, before the order arrives: parked.
PARKED = [_return("fay", "run-fay", "25.00", NOW - timedelta(hours=3))]
RUN = [
    _purchase("ann", "run-1", "11.00", NOW - timedelta(hours=5)),
    _purchase("cat", "run-2", "12.00", NOW - timedelta(hours=5)),
    _purchase("bob", "run-3", "16.00", NOW - timedelta(hours=4)),  # repays bob's debt
    _purchase("ann", "run-4", "13.00", NOW - timedelta(hours=4)),
    _purchase("fay", "run-fay", "50.00", NOW - timedelta(hours=4)),  # its return waits
    _purchase("dan", "run-5", "15.00", datetime(2026, 3, 7, tzinfo=UTC)),  # after NOW
    _purchase("eve", "run-6", "0.50", NOW - timedelta(hours=3)),  # earns nothing
    _purchase("bob", "run-7", "18.00", NOW - timedelta(hours=3)),
    _purchase("eve", "run-8", "17.00", NOW - timedelta(hours=2)),
    _purchase("cat", "run-9", "19.00", NOW - timedelta(hours=2)),
    _purchase("gus", "run-10", "21.00", NOW - timedelta(hours=1)),
]


async def _books_after_run(
    url: str, early_every: int | None, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, list[tuple[str, ...]]], list[bytes], list[list[str]]]:
    """Seed the books, apply RUN with early writes every `early_every` orders (None: none,
    the save writes everything); every table's rows, the run's outgoing events and the
    orders written early, write by write."""
    written: list[list[str]] = []
    insert_orders = OrderRepository.insert_orders

    async def orders_spy(self: OrderRepository, new: list[StoredOrder]) -> None:
        written.append([order.order_id for order in new])
        await insert_orders(self, new)

    async def no_early_write(self: Any, accounts: Any, orders: Any) -> None:
        """The orders stay in the run's `Changes`: the save inserts them, as before."""

    engine = create_engine(url, pool_size=1)
    try:
        async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
            await accrue_purchases(uow, SEEDED, TOPIC)
            await apply_returns(uow, PARKED, TOPIC)
        async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
            await uow.conn.exec_driver_sql(
                "UPDATE accounts SET debt = 25 WHERE customer_id = 'bob'"
            )
        with monkeypatch.context() as patched:
            if early_every is None:
                patched.setattr(accrual.EarlyWrites, "write", no_early_write)
            else:
                patched.setattr(accrual, "EARLY_WRITE_EVERY", early_every)
            patched.setattr(OrderRepository, "insert_orders", orders_spy)
            async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
                await accrue_purchases(uow, RUN, TOPIC)
                sent = [message.value for message in uow.outbox.pending]
    finally:
        await engine.dispose()
    return await _every_row(url), sent, written


async def _every_row(url: str) -> dict[str, list[tuple[str, ...]]]:
    """Every table's rows as text, sorted; `recorded_at` (the transaction's clock) left out."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        tables = [
            row[0]
            for row in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename NOT IN ('alembic_version', 'outbox')"
            )
        ]
        found = {}
        for table in sorted(tables):
            rows = await conn.fetch(f'SELECT * FROM "{table}"')
            found[table] = sorted(
                tuple(repr(value) for name, value in row.items() if name != "recorded_at")
                for row in rows
            )
        return found
    finally:
        await conn.close()


async def test_early_writes_leave_the_books_a_single_save_leaves(
    points_db: str, databases: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_the_end = await _books_after_run(await databases.fresh("points"), None, monkeypatch)
    early = await _books_after_run(points_db, 2, monkeypatch)
    rows, sent, written = early
    assert at_the_end[2] == [], "the run without early writes wrote some early"
    # Customers on lot totals only: not bob (debt), dan (after NOW) nor fay (a parked
    # return); two orders a chunk, the seventh (run-10) after the loop.
    assert written == [["run-1", "run-2"], ["run-4", "run-6"], ["run-8", "run-9"], ["run-10"]]
    assert rows["order_earnings"] and rows["lots"] and rows["ledger"]
    for table, expected in at_the_end[0].items():
        assert rows[table] == expected, f"{table} differs when written early"
    assert sent == at_the_end[1], "the run's outgoing events differ when written early"
    assert len(sent) >= len(RUN)


async def test_a_run_failing_with_an_early_write_in_flight_rolls_back(
    points_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accrual, "EARLY_WRITE_EVERY", 1)
    over_paid = [{"sku": "sku-1", "category": "food", "quantity": 1, "unit_price": "9.00"}]
    run = [
        _purchase("kim", "f-1", "11.00", NOW - timedelta(hours=3)),
        _purchase("lee", "f-2", "12.00", NOW - timedelta(hours=2)),
        _purchase("kim", "f-3", "5.00", NOW - timedelta(hours=1), items=over_paid),
    ]
    engine = create_engine(points_db, pool_size=1)
    try:
        with pytest.raises(RejectedEvent) as raised:
            async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
                await accrue_purchases(uow, run, TOPIC)
        assert raised.value.event_id == str(run[2].event_id)
        # The pool's one connection comes back usable: no statement left running on it.
        async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
            counts = (
                await uow.conn.exec_driver_sql(
                    "SELECT (SELECT count(*) FROM order_earnings), (SELECT count(*) FROM lots),"
                    " (SELECT count(*) FROM ledger)"
                )
            ).one()
            assert tuple(counts) == (0, 0, 0), "an early write outlived its failed run"
            await accrue_purchases(uow, run[:2], TOPIC)
    finally:
        await engine.dispose()
    rows = await _every_row(points_db)
    assert len(rows["order_earnings"]) == 2


async def test_an_order_written_early_earns_once_and_cannot_be_claimed_again(
    points_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same order again later in the run, after its chunk was written: a replay earns
    nothing more; another customer's claim to it (or a made-up amount) is refused."""
    monkeypatch.setattr(accrual, "EARLY_WRITE_EVERY", 1)
    first = _purchase("kim", "o-1", "11.00", NOW - timedelta(hours=3))
    replay = _purchase("kim", "o-1", "11.00", NOW - timedelta(hours=3))
    engine = create_engine(points_db)
    try:
        async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
            await accrue_purchases(
                uow, [first, _purchase("lee", "o-2", "12.00", NOW), replay], TOPIC
            )
        for claim in (
            _purchase("lee", "o-1", "11.00", NOW - timedelta(hours=3)),
            _purchase("kim", "o-1", "99.00", NOW - timedelta(hours=3)),
        ):
            run = [_purchase("kim", "o-3", "5.00", NOW), _purchase("lee", "o-4", "6.00", NOW)]
            with pytest.raises(RejectedEvent) as raised:
                async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
                    await accrue_purchases(uow, [*run, claim], TOPIC)
            assert raised.value.code == "order_conflict"
    finally:
        await engine.dispose()
    rows = await _every_row(points_db)
    assert [row[0] for row in rows["order_earnings"]] == ["'o-1'", "'o-2'"]
    assert len(rows["lots"]) == 2, "the replay or a refused run left a lot behind"
