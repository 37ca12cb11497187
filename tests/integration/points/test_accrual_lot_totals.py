"""An accrual that draws on no lot reads only its customer's lot totals, not every live lot
(`attach_live_totals`): each `points.accrued` it emits must be byte for byte the event the
same purchase gives with every live lot restored, whatever the lots' states at `now`.

The books hold, at NOW, lots that are pending, available (one became available exactly at
NOW), expired (one exactly at NOW), and lots that change state between NOW and a purchase
dated after NOW. One run then holds several purchases of one customer, a customer with
debt, a customer whose purchase is dated after NOW, one with parked-free old lots only and
a newcomer. The expected events come from `record_purchase` on the accounts as `lock`
loads them (every live lot), applied in the same order.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.points.accounts.repository import AccountRepository
from services.points.accrual.service import PurchaseSetting, accrue_purchases, record_purchase
from services.points.domain.book import Account, Changes
from services.points.rules.service import rule_book
from services.points.uow import PointsUnitOfWork
from shared.contracts.pos import PurchaseCompleted
from shared.contracts.registry import decode_event
from shared.db import create_engine
from tests.support.outgoing import wire

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOPIC = "loyalty.points"
_numbers = iter(range(1, 10_000))


def _purchase(customer: str, occurred_at: datetime, amount: str) -> PurchaseCompleted:
    number = next(_numbers)
    event = decode_event(
        {
            "event_id": str(uuid.UUID(int=number)),
            "type": "purchase.completed",
            "version": 1,
            "occurred_at": occurred_at.isoformat(),
            "source": "pos-test",
            "customer_id": customer,
            "data": {
                "order_id": f"order-{number}",
                "merchant_id": "grocer",
                "store_id": "store-1",
                "amount": amount,
                "currency": "EUR",
            },
        }
    )
    assert isinstance(event, PurchaseCompleted)
    return event


# Lots pend 14 days, then live 12 months (the default rules).
SEEDED = [
    _purchase("ann", NOW - timedelta(days=4), "30.00"),  # pending at NOW
    _purchase("ann", NOW - timedelta(days=14), "20.00"),  # available exactly at NOW
    _purchase("ann", datetime(2025, 2, 15, 12, tzinfo=UTC), "40.00"),  # expires exactly at NOW
    _purchase("ann", datetime(2025, 1, 10, tzinfo=UTC), "50.00"),  # expired before NOW
    _purchase("dan", datetime(2025, 2, 20, tzinfo=UTC), "60.00"),  # expires 6 March
    _purchase("dan", datetime(2026, 2, 20, tzinfo=UTC), "70.00"),  # available 6 March
    _purchase("cat", datetime(2025, 12, 24, tzinfo=UTC), "80.00"),  # available
    _purchase("bob", NOW - timedelta(days=2), "90.00"),  # pending; bob owes points below
]


def _run() -> list[PurchaseCompleted]:
    return [
        _purchase("ann", NOW - timedelta(hours=2), "11.00"),
        _purchase("cat", NOW - timedelta(hours=2), "12.00"),
        _purchase("ann", NOW - timedelta(hours=1), "13.00"),
        _purchase("dan", NOW - timedelta(hours=1), "14.00"),
        _purchase("dan", datetime(2026, 3, 7, tzinfo=UTC), "15.00"),  # dated after NOW
        _purchase("bob", NOW - timedelta(hours=1), "16.00"),
        _purchase("eve", NOW - timedelta(minutes=5), "17.00"),  # a newcomer
        _purchase("ann", NOW, "18.00"),  # at NOW exactly: its balance is still at NOW
        _purchase("eve", NOW - timedelta(minutes=1), "0.50"),  # earns nothing
    ]


async def _expected(engine: Any, run: list[PurchaseCompleted]) -> list[bytes]:
    """The run applied in memory to the accounts with every live lot, as before."""
    async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
        accounts = await uow.accounts.lock(e.customer_id for e in run)
        book = await rule_book(uow)
    emitted: list[Any] = []
    changes = Changes()
    for event in run:
        account: Account = accounts[event.customer_id]
        assert account.unloaded_lots is None
        setting = PurchaseSetting(
            book.in_force(event.occurred_at), 0, (), max(event.occurred_at, NOW)
        )
        emitted += record_purchase(account, event, setting, changes)
    return wire(emitted)


async def test_an_accrual_on_lot_totals_emits_what_every_live_lot_gives(
    points_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(points_db, pool_size=2)
    summed: list[str] = []
    restored: list[str] = []
    attach_totals = AccountRepository.attach_live_totals
    attach_lots = AccountRepository.attach_live_lots

    async def totals_spy(self: AccountRepository, accounts: Any, at: datetime) -> None:
        accounts = list(accounts)
        summed.extend(a.customer_id for a in accounts)
        await attach_totals(self, accounts, at)

    async def lots_spy(self: AccountRepository, accounts: Any) -> None:
        accounts = list(accounts)
        restored.extend(a.customer_id for a in accounts)
        await attach_lots(self, accounts)

    try:
        async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
            await accrue_purchases(uow, SEEDED, TOPIC)
        async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
            await uow.conn.exec_driver_sql(
                "UPDATE accounts SET debt = 25 WHERE customer_id = 'bob'"
            )
        run = _run()
        expected = await _expected(engine, run)
        monkeypatch.setattr(AccountRepository, "attach_live_totals", totals_spy)
        monkeypatch.setattr(AccountRepository, "attach_live_lots", lots_spy)
        async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:
            await accrue_purchases(uow, run, TOPIC)
            got = [message.value for message in uow.outbox.pending]
    finally:
        await engine.dispose()
    assert sorted(summed) == ["ann", "cat", "eve"], "these draw on no lot and need no lots"
    assert sorted(restored) == ["bob", "dan"], "debt and a purchase after NOW need the lots"
    assert len(got) == len(run)
    for index, (sent, wanted) in enumerate(zip(got, expected, strict=True)):
        assert sent == wanted, (
            f"purchase {index} of {run[index].customer_id}: the balance on lot totals differs"
            " from the balance of every live lot"
        )
