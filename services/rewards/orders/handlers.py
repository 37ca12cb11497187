"""`purchase.completed` / `purchase.returned` from `pos.purchases`: the order record."""

from __future__ import annotations

from collections.abc import Sequence

from services.rewards.orders.service import apply_purchases, apply_returns
from services.rewards.uow import RewardsUnitOfWork
from shared.contracts.pos import PurchaseCompleted, PurchaseReturned


async def purchases(uow: RewardsUnitOfWork, events: Sequence[PurchaseCompleted]) -> None:
    await apply_purchases(uow, events)


async def returns(uow: RewardsUnitOfWork, events: Sequence[PurchaseReturned]) -> None:
    await apply_returns(uow, events)
