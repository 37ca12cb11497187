"""A run's accounts written by the ledger trigger (migration points_0007) are written
exactly as a direct save would write them: every column, NULLs included, customers
without a ledger line of their own too, each staged document applied once, and
`ledger_balance` still the sum of the customer's ledger lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.points.domain.book import Changes, LedgerLine
from services.points.domain.ledger import EntryKind
from services.points.domain.tiers import Tier
from services.points.uow import PointsUnitOfWork
from shared.db import asyncpg_dsn, create_engine, transaction_driver

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, tzinfo=UTC)
REVIEW = NOW + timedelta(days=30)


def _adjustment(customer_id: str, points: int, reference: str) -> LedgerLine:
    return LedgerLine(
        customer_id, EntryKind.ADJUSTMENT, points, reference, NOW, reason="test", actor="ops"
    )


async def test_accounts_written_with_the_ledger_match_a_direct_save(points_db: str) -> None:
    engine = create_engine(points_db, pool_size=2)
    reader = await asyncpg.connect(asyncpg_dsn(points_db))
    try:
        async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:  # no ledger: direct
            accounts = await uow.accounts.lock(["kim", "lee"])
            for account in accounts.values():
                account.next_review_at = REVIEW
            await uow.save(accounts, Changes(accounts={"kim", "lee"}))
        async with PointsUnitOfWork.begin(engine, lambda: NOW) as uow:  # staged
            accounts = await uow.accounts.lock(["kim", "lee"])
            kim, lee = accounts["kim"], accounts["lee"]
            kim.tier, kim.purchase_count, kim.lifetime_earned = Tier.GOLD, 3, 70
            kim.next_review_at = None
            lee.debt, lee.next_review_at = 5, None
            changes = Changes(accounts={"lee"})
            changes.write(_adjustment("kim", 40, "a-1"))
            await uow.save(accounts, changes)
            # Later in the same transaction: another write to kim, then a ledger line
            # inserted without a staged save. The first document must not come back.
            driver = await transaction_driver(uow.conn)
            await driver.execute("UPDATE accounts SET purchase_count = 9 WHERE customer_id = 'kim'")
            await uow.accounts.save(accounts, Changes(ledger=[_adjustment("kim", -15, "a-2")]))
        rows = {
            row["customer_id"]: row
            for row in await reader.fetch(
                "SELECT a.*, (SELECT coalesce(sum(points), 0) FROM ledger AS l"
                " WHERE l.customer_id = a.customer_id) AS ledger_sum FROM accounts AS a"
            )
        }
    finally:
        await reader.close()
        await engine.dispose()
    kim, lee = rows["kim"], rows["lee"]
    assert (kim["tier"], kim["lifetime_earned"], kim["next_review_at"]) == ("gold", 70, None)
    assert kim["purchase_count"] == 9, "a staged document was applied twice"
    assert (lee["debt"], lee["next_review_at"]) == (5, None), (
        "an account staged without a ledger line of its own was not written"
    )
    assert (kim["ledger_balance"], kim["ledger_sum"]) == (25, 25)
    assert (lee["ledger_balance"], lee["ledger_sum"]) == (0, 0)
