"""Due-time jobs: voucher expiry, the green channel (claims and held compensations escalated
at 12 hours, announced overdue at 24: `green_channel`), and catalogue claims the points
service never answered (`claim_timeouts`).

Each pass claims due rows with SKIP LOCKED in its own transaction and costs O(rows due)
through partial indexes, so N instances can run it side by side. The clock is injected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.rewards.claim_timeouts import DEFAULT_CLAIM_TIMEOUT, time_out_claims
from services.rewards.claims import escalate_due_claims
from services.rewards.green_channel import (
    announce_overdue_claims,
    announce_overdue_compensations,
    escalate_held_compensations,
)
from services.rewards.issuing import expire_due_vouchers
from services.rewards.topics import RewardsTopics
from shared.errors import is_transient
from shared.outbox import OutboxWriter

log = logging.getLogger(__name__)


async def run_due_jobs_once(
    engine: AsyncEngine,
    topics: RewardsTopics,
    now: datetime,
    batch: int,
    claim_timeout: timedelta = DEFAULT_CLAIM_TIMEOUT,
) -> dict[str, int]:
    """One pass of every job; returns how many rows each handled."""

    async def time_out(
        conn: AsyncConnection, outbox: OutboxWriter, topics: RewardsTopics, now: datetime, n: int
    ) -> int:
        return await time_out_claims(conn, outbox, topics, now, n, claim_timeout)

    done: dict[str, int] = {}
    jobs = (
        ("vouchers_expired", _expire),
        ("claims_escalated", _escalate),
        ("compensations_escalated", _escalate_held),
        ("claims_overdue", _overdue_claims),
        ("compensations_overdue", _overdue_held),
        ("claims_timed_out", time_out),
    )
    for name, job in jobs:
        total = 0
        while True:
            async with engine.begin() as conn:
                outbox = OutboxWriter()
                count = await job(conn, outbox, topics, now, batch)
                await outbox.flush(conn)
            total += count
            if count < batch:
                break
        done[name] = total
    return done


async def _expire(
    conn: AsyncConnection, outbox: OutboxWriter, topics: RewardsTopics, now: datetime, batch: int
) -> int:
    return await expire_due_vouchers(conn, outbox, topics.rewards, now, batch)


async def _escalate(
    conn: AsyncConnection, outbox: OutboxWriter, topics: RewardsTopics, now: datetime, batch: int
) -> int:
    return await escalate_due_claims(conn, outbox, topics.ops, now, batch)


async def _escalate_held(
    conn: AsyncConnection, outbox: OutboxWriter, topics: RewardsTopics, now: datetime, batch: int
) -> int:
    return await escalate_held_compensations(conn, outbox, topics.ops, now, batch)


async def _overdue_claims(
    conn: AsyncConnection, outbox: OutboxWriter, topics: RewardsTopics, now: datetime, batch: int
) -> int:
    return await announce_overdue_claims(conn, outbox, topics.rewards, now, batch)


async def _overdue_held(
    conn: AsyncConnection, outbox: OutboxWriter, topics: RewardsTopics, now: datetime, batch: int
) -> int:
    return await announce_overdue_compensations(conn, outbox, topics.rewards, now, batch)


class DueJobs:
    """Runs the jobs every `interval` seconds until stopped; transient faults wait a pass."""

    def __init__(
        self,
        engine: AsyncEngine,
        topics: RewardsTopics,
        clock: Callable[[], datetime],
        interval: float,
        batch: int,
        after_pass: Callable[[], None] | None = None,
        claim_timeout: timedelta = DEFAULT_CLAIM_TIMEOUT,
    ) -> None:
        self.engine, self.topics, self.clock = engine, topics, clock
        self.interval, self.batch, self.after_pass = interval, batch, after_pass
        self.claim_timeout = claim_timeout
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                done = await run_due_jobs_once(
                    self.engine, self.topics, self.clock(), self.batch, self.claim_timeout
                )
                if any(done.values()) and self.after_pass is not None:
                    self.after_pass()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning(
                    "rewards jobs: transient fault, next pass in %.0fs: %s", self.interval, exc
                )
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)
            except TimeoutError:
                pass
