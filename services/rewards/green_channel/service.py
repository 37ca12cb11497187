"""Green channel for held compensations and late decisions (DOMAIN.md section 2).

Every complaint reaches a manager within 12 hours and gets an answer within 24. Claims
and compensations held for review are escalated at 12 hours (`claim.escalated`,
`compensation.escalated`, on the operations topic), and every claim and held
compensation still undecided 24 hours on is announced once (`review.overdue`, on
`loyalty.rewards`), so nobody has to pull a report to find them.

Each job claims due rows with `FOR UPDATE SKIP LOCKED` through a partial index on the
undecided rows, marks them in the same transaction (`escalated_at`, `overdue_at`) and
writes the event to the outbox there: exactly once per row, whatever the number of
instances. Event ids are derived from the row, so a retried pass re-derives the same id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from services.rewards.domain.guarantee_claims import DECIDE_WITHIN, ESCALATE_AFTER
from services.rewards.green_channel.events import (
    claim_escalated,
    claim_overdue,
    compensation_escalated,
    compensation_overdue,
)
from shared.contracts.envelope import EventEnvelope

if TYPE_CHECKING:
    from datetime import timedelta

    from services.rewards.uow import RewardsUnitOfWork


async def _pass(
    uow: RewardsUnitOfWork,
    subject: str,
    mark: str,
    after: timedelta,
    limit: int,
    event: Callable[[Any, Any], EventEnvelope],
    to_ops: bool,
) -> int:
    due = await uow.green_channel.take_due(subject, mark, uow.now - after, limit)
    await uow.green_channel.mark_taken(subject, due, mark, uow.now)
    for row in due:
        (uow.emit_ops if to_ops else uow.emit_rewards)(event(row, uow.now))
    return len(due)


async def escalate_due_claims(uow: RewardsUnitOfWork, limit: int) -> int:
    """Emit `claim.escalated` once for each claim undecided 12 hours after filing."""
    return await _pass(uow, "claim", "escalated_at", ESCALATE_AFTER, limit, claim_escalated, True)


async def escalate_held_compensations(uow: RewardsUnitOfWork, limit: int) -> int:
    """Emit `compensation.escalated` once for each compensation held 12 hours undecided."""
    return await _pass(
        uow, "compensation", "escalated_at", ESCALATE_AFTER, limit, compensation_escalated, True
    )


async def announce_overdue_compensations(uow: RewardsUnitOfWork, limit: int) -> int:
    """Emit `review.overdue` once for each compensation held 24 hours undecided."""
    return await _pass(
        uow, "compensation", "overdue_at", DECIDE_WITHIN, limit, compensation_overdue, False
    )


async def announce_overdue_claims(uow: RewardsUnitOfWork, limit: int) -> int:
    """Emit `review.overdue` once for each guarantee claim undecided 24 hours after filing."""
    return await _pass(uow, "claim", "overdue_at", DECIDE_WITHIN, limit, claim_overdue, False)
