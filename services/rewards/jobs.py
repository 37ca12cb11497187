"""Every periodic job of the rewards service, each a `shared.jobs.PeriodicJob`.

- `voucher-expiry`: vouchers past their expiry (`voucher.expired`);
- `escalation`: claims and held compensations undecided 12 hours on, escalated to
  operations (`green_channel`);
- `overdue-reviews`: the same still undecided at 24 hours, announced once (`green_channel`);
- `claim-timeouts`: catalogue claims the points service never answered (`claims`).

Each pass claims due rows with SKIP LOCKED in its own transaction, batch after batch until
a batch comes back short, and costs O(rows due) through partial indexes, so N instances
can run it side by side. The clock is injected; after a pass that did work the outbox
relay is woken, and the service's gauges are refreshed (`metrics`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.rewards import metrics
from services.rewards.claims.service import DEFAULT_CLAIM_TIMEOUT, time_out_claims
from services.rewards.green_channel.service import (
    announce_overdue_claims,
    announce_overdue_compensations,
    escalate_due_claims,
    escalate_held_compensations,
)
from services.rewards.settings import RewardsTopics
from services.rewards.uow import RewardsUnitOfWork
from services.rewards.vouchers.service import expire_due_vouchers
from shared.jobs import PeriodicJob

Step = Callable[[RewardsUnitOfWork, int], Awaitable[int]]


def _steps(claim_timeout: timedelta) -> dict[str, dict[str, Step]]:
    async def time_out(uow: RewardsUnitOfWork, n: int) -> int:
        return await time_out_claims(uow, n, claim_timeout)

    return {
        "voucher-expiry": {"vouchers_expired": expire_due_vouchers},
        "escalation": {
            "claims_escalated": escalate_due_claims,
            "compensations_escalated": escalate_held_compensations,
        },
        "overdue-reviews": {
            "claims_overdue": announce_overdue_claims,
            "compensations_overdue": announce_overdue_compensations,
        },
        "claim-timeouts": {"claims_timed_out": time_out},
    }


async def _drain(
    engine: AsyncEngine, topics: RewardsTopics, now: datetime, batch: int, step: Step
) -> int:
    """Run one step batch after batch, each in its own transaction, until one is short."""
    total = 0
    while True:
        async with RewardsUnitOfWork.begin(engine, lambda: now) as uow:
            count = await step(uow.configured(topics, uow.default_voucher_days), batch)
        total += count
        if count < batch:
            return total


async def run_due_jobs_once(
    engine: AsyncEngine,
    topics: RewardsTopics,
    now: datetime,
    batch: int,
    claim_timeout: timedelta = DEFAULT_CLAIM_TIMEOUT,
) -> dict[str, int]:
    """One pass of every job at `now`; returns how many rows each step handled."""
    done: dict[str, int] = {}
    for steps in _steps(claim_timeout).values():
        for name, step in steps.items():
            done[name] = await _drain(engine, topics, now, batch, step)
    return done


def due_jobs(
    engine: AsyncEngine,
    topics: RewardsTopics,
    clock: Callable[[], datetime],
    interval_seconds: float,
    batch: int,
    *,
    after_work: Callable[[], None] | None = None,
    claim_timeout: timedelta = DEFAULT_CLAIM_TIMEOUT,
) -> list[PeriodicJob]:
    """The service's periodic jobs, each ticking every `interval_seconds`."""

    def job(name: str, steps: dict[str, Step]) -> PeriodicJob:
        async def tick() -> None:
            now = clock()
            done = [await _drain(engine, topics, now, batch, step) for step in steps.values()]
            if any(done) and after_work is not None:
                after_work()
            async with engine.connect() as conn:
                await metrics.refresh(conn)

        return PeriodicJob(name, tick, interval_seconds)

    return [job(name, steps) for name, steps in _steps(claim_timeout).items()]
