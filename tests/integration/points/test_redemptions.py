"""Redemptions through the service layer the HTTP routes will call (one transaction per
call, as per request): no overspending under concurrency, idempotency keys, cancellation,
and a return after the points were spent leaving a visible negative balance."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.points.adjustments.service import Adjustment, adjust_points
from services.points.redemptions.service import (
    IdempotencyKeyReused,
    NotEnoughPoints,
    RedemptionRequest,
    cancel_redemption,
    redeem,
)
from services.points.uow import PointsUnitOfWork
from shared.db import create_engine
from tests.integration.points.helpers import days_ago, points_stack, purchase, returned
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


def _ask(customer: str, points: int, key: str, reference: str = "basket-1") -> RedemptionRequest:
    return RedemptionRequest(customer, points, "cinema", reference, key)


async def test_fifty_concurrent_redemptions_never_overspend(
    infra: Infra, points_db: str, unique: str
) -> None:
    engine = create_engine(points_db, pool_size=10)
    now = datetime.now(UTC)
    try:
        async with PointsUnitOfWork.begin(engine, lambda: now) as uow:
            gift = Adjustment("adj-1", 100, "welcome gift", "ops@example.org")
            await adjust_points(uow, "kim", gift)

        async def one(n: int) -> bool:
            try:
                async with PointsUnitOfWork.begin(engine, lambda: now) as uow:
                    await redeem(uow, _ask("kim", 7, f"key-{n}"))
            except NotEnoughPoints:
                return False
            return True

        outcomes = await asyncio.gather(*(one(n) for n in range(50)))
        assert sum(outcomes) == 100 // 7, "exactly as many redemptions as 100 points allow"
        async with points_stack(infra, points_db, unique) as stack:
            account = await stack.account("kim", now)
            assert account.balance.available == 100 - 7 * (100 // 7), "never below zero"
            await stack.sound("kim")
    finally:
        await engine.dispose()


async def test_idempotency_key_and_cancellation(infra: Infra, points_db: str, unique: str) -> None:
    engine = create_engine(points_db, pool_size=2)
    now = datetime.now(UTC)
    try:
        async with PointsUnitOfWork.begin(engine, lambda: now) as uow:
            await adjust_points(uow, "lea", Adjustment("adj-2", 50, "goodwill", "ops"))
            first = await redeem(uow, _ask("lea", 20, "k-1"))
            again = await redeem(uow, _ask("lea", 20, "k-1"))
            assert (again.redemption_id, again.replayed) == (first.redemption_id, True)
            assert again.balance.available == 30, "a retried key does not debit twice"
            with pytest.raises(IdempotencyKeyReused):
                await redeem(uow, _ask("lea", 25, "k-1"))
        async with PointsUnitOfWork.begin(engine, lambda: now) as uow:
            cancelled = await cancel_redemption(uow, first.redemption_id)
            assert cancelled.balance.available == 50, "cancelling gives the points back"
            twice = await cancel_redemption(uow, first.redemption_id)
            assert twice.replayed and twice.balance.available == 50
        async with points_stack(infra, points_db, unique) as stack:
            await stack.sound("lea")
            kinds = await stack.scalar(
                "SELECT string_agg(kind || ' ' || points, ', ' ORDER BY id) FROM ledger"
            )
            assert kinds == "adjustment 50, redemption -20, redemption_cancel 20"
    finally:
        await engine.dispose()


async def test_return_after_the_points_were_spent_shows_a_negative_balance(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.consumer():
            old_sale = purchase("max", "o-1", "60.00", days_ago(20))  # available since day 14
            await publish(infra.bootstrap_servers, stack.inbound, [old_sale])
            await stack.wait_handled(1)
            async with PointsUnitOfWork.begin(stack.engine, lambda: datetime.now(UTC)) as uow:
                spent = await redeem(uow, _ask("max", 60, "k-max"))
            assert spent.balance.available == 0
            refund = returned("max", "o-1", "r-1", "60.00", days_ago(0.1))
            await publish(infra.bootstrap_servers, stack.inbound, [refund])
            await stack.wait_handled(2)
        account = await stack.account("max")
        assert account.balance.available == -60, "spent points reversed show as negative"
        assert account.balance.debt == 60
        async with PointsUnitOfWork.begin(stack.engine, lambda: days_ago(0)) as uow:
            await adjust_points(uow, "max", Adjustment("adj-3", 100, "apology", "ops"))
        account = await stack.account("max")
        assert account.balance.available == 40, "new points repay the debt first"
        await stack.sound("max")
