"""The rewards unit of work: one transaction, its outbox, and a repository per table group.

A use case takes a `RewardsUnitOfWork`, loads and saves through its repositories and emits
its events with `emit_rewards` / `emit_ops`; it never commits. Routes open one with
`request_uow(request)` (`RewardsUnitOfWork.begin`: commits with the outbox on success,
rolls back on error, then wakes the outbox relay); consumer handlers wrap their batch with
`RewardsUnitOfWork.of_batch(ctx)` (the runtime commits). `state` is per-batch memory for
what a batch reads once (the milestone rulebook, the referral programme); `config` holds
policies, limits, voucher values and reward definitions (`configuration.service`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Self

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.catalogue.repository import CatalogueRepository
from services.rewards.claims.repository import ClaimRepository
from services.rewards.compensation.repository import CompensationRepository
from services.rewards.configuration.repository import ConfigurationRepository
from services.rewards.configuration.service import ConfigCache
from services.rewards.customers.repository import CustomerRepository
from services.rewards.green_channel.repository import GreenChannelRepository
from services.rewards.guarantee_claims.repository import GuaranteeClaimRepository
from services.rewards.milestones.repository import MilestoneRepository
from services.rewards.orders.repository import OrderRepository
from services.rewards.policies.repository import PolicyRepository
from services.rewards.referrals.repository import ReferralRepository
from services.rewards.settings import RewardsTopics
from services.rewards.vouchers.repository import VoucherRepository
from shared.contracts.envelope import EventEnvelope
from shared.kafka.handlers import BatchContext
from shared.outbox import OutboxWriter
from shared.uow import UnitOfWork


class RewardsUnitOfWork(UnitOfWork):
    """A rewards transaction: repositories on its connection, events to its outbox."""

    def __init__(self, conn: AsyncConnection, outbox: OutboxWriter, now: datetime) -> None:
        super().__init__(conn, outbox, now)
        self.topics = RewardsTopics()
        self.default_voucher_days = 30
        self.state: dict[str, Any] = {}
        # Policies, limits, voucher values, reward definitions: this transaction's own,
        # unless `configured` hands it the consumer's lasting cache.
        self.config = ConfigCache()
        self.catalogue = CatalogueRepository(conn)
        self.claims = ClaimRepository(conn)
        self.compensations = CompensationRepository(conn)
        self.configuration = ConfigurationRepository(conn)
        self.customers = CustomerRepository(conn)
        self.green_channel = GreenChannelRepository(conn)
        self.guarantee_claims = GuaranteeClaimRepository(conn)
        self.milestones = MilestoneRepository(conn)
        self.orders = OrderRepository(conn)
        self.policies = PolicyRepository(conn)
        self.referrals = ReferralRepository(conn)
        self.vouchers = VoucherRepository(conn)

    @classmethod
    def of_batch(cls, ctx: BatchContext) -> Self:
        uow = super().of_batch(ctx)
        uow.state = ctx.state
        return uow

    def configured(
        self, topics: RewardsTopics, default_voucher_days: int, config: ConfigCache | None = None
    ) -> Self:
        """Where this service's events go, how long a voucher lasts without a rule, and
        the configuration cache to read through (the consumer's lasts across batches)."""
        self.topics, self.default_voucher_days = topics, default_voucher_days
        if config is not None:
            self.config = config
        return self

    def emit_rewards(self, event: EventEnvelope) -> None:
        """Facts and commands, on `loyalty.rewards`."""
        self.emit(self.topics.rewards, event)

    def emit_ops(self, event: EventEnvelope) -> None:
        """Escalations, on the operations topic."""
        self.emit(self.topics.ops, event)


@asynccontextmanager
async def request_uow(request: Request) -> AsyncIterator[RewardsUnitOfWork]:
    """The unit of work of one HTTP request: committed when the route returns normally."""
    state = request.app.state
    async with RewardsUnitOfWork.begin(state.engine, state.clock) as uow:
        yield uow.configured(state.topics, state.settings.default_voucher_days)
    relay = getattr(state, "outbox_relay", None)
    if relay is not None:
        relay.wakeup.set()
