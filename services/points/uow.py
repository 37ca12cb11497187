"""The points unit of work: one transaction, its outbox, and the repositories on it.

Routes open one per request (`PointsUnitOfWork.begin(engine, clock)`, or `for_request`,
which adds the 503 for a database that does not answer); consumer handlers wrap their
batch's (`PointsUnitOfWork.of_batch(ctx)`); the jobs open one per batch of due work.
Use cases load, change and save through it and never commit. Repositories are built on
first use, so a unit of work costs only what its use case touches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from functools import cached_property
from typing import Any, Self

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.accounts.repository import AccountRepository
from services.points.accrual.repository import OrderRepository
from services.points.adjustments.repository import AdjustmentRepository
from services.points.audit.repository import AuditRepository
from services.points.domain.book import Account, Changes
from services.points.expiry.repository import ExpiryRepository
from services.points.liability.repository import LiabilityRepository
from services.points.redemptions.repository import RedemptionRepository
from services.points.returns.repository import ReturnRepository
from services.points.rules.repository import RuleRepository
from services.points.settlement.repository import SettlementRepository
from services.points.tiers.repository import TierRepository
from shared.errors import DomainError, is_transient
from shared.kafka.handlers import BatchContext
from shared.outbox import OutboxWriter
from shared.uow import UnitOfWork


class ServiceUnavailable(DomainError):
    status, code, title = 503, "database_unavailable", "The points database is not reachable"


class PointsUnitOfWork(UnitOfWork):
    """A points transaction with its repositories; `cache` lives as long as the batch."""

    def __init__(self, conn: AsyncConnection, outbox: OutboxWriter, now: datetime) -> None:
        super().__init__(conn, outbox, now)
        self.cache: dict[str, Any] = {}

    @classmethod
    def of_batch(cls, ctx: BatchContext) -> Self:
        """The batch's transaction; `cache` is the batch's, shared by its runs of events."""
        uow = super().of_batch(ctx)
        uow.cache = ctx.state
        return uow

    @classmethod
    @asynccontextmanager
    async def for_request(cls, request: Request) -> AsyncIterator[Self]:
        """`begin` on the app's engine and clock; a database outage becomes 503, not 500.
        After the commit, the process's outbox relay (if it runs one) is woken, so the
        request's events leave at once instead of at the relay's next poll."""
        try:
            async with cls.begin(request.app.state.engine, request.app.state.clock) as uow:
                yield uow
        except DomainError:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise ServiceUnavailable("the points database did not answer; retry later") from exc
            raise
        relay = getattr(request.app.state, "outbox_relay", None)
        if relay is not None:
            relay.wakeup.set()

    @cached_property
    def accounts(self) -> AccountRepository:
        return AccountRepository(self.conn)

    @cached_property
    def orders(self) -> OrderRepository:
        return OrderRepository(self.conn)

    @cached_property
    def returns(self) -> ReturnRepository:
        return ReturnRepository(self.conn)

    @cached_property
    def redemptions(self) -> RedemptionRepository:
        return RedemptionRepository(self.conn)

    @cached_property
    def adjustments(self) -> AdjustmentRepository:
        return AdjustmentRepository(self.conn)

    @cached_property
    def rules(self) -> RuleRepository:
        return RuleRepository(self.conn)

    @cached_property
    def liability(self) -> LiabilityRepository:
        return LiabilityRepository(self.conn)

    @cached_property
    def audit(self) -> AuditRepository:
        return AuditRepository(self.conn)

    @cached_property
    def settlement(self) -> SettlementRepository:
        return SettlementRepository(self.conn)

    @cached_property
    def expiry(self) -> ExpiryRepository:
        return ExpiryRepository(self.conn)

    @cached_property
    def tiers(self) -> TierRepository:
        return TierRepository(self.conn)

    async def save(self, accounts: dict[str, Account], changes: Changes) -> None:
        """Write back everything a run changed, in an order the foreign keys accept:
        accounts, lots, ledger, orders, returns, daily totals."""
        await self.accounts.save(accounts, changes)
        await self.orders.save(accounts, changes)
        await self.returns.save(changes)
        await self.orders.add_daily_points(changes)
