"""The customer's account as a partner app sees it, and what every use case of the books shares.

Reads take no locks. A balance is derived from the live lots at the moment asked, so
points whose expiry date has passed never show, whether or not the expiry job has run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.points.domain.balances import EXPIRING_SOON_WINDOW, Balance, balance_at
from services.points.domain.errors import PointsRuleError
from services.points.domain.ledger import LedgerEntry
from services.points.domain.moments import add_months
from services.points.domain.programme import RuleBook
from services.points.domain.tiers import (
    QualifyingActivity,
    Tier,
    TierProgress,
    progress_to_next_tier,
    qualifying_activity,
)
from services.points.ledger.repository import BookReader, LedgerFilter
from services.points.rules.repository import RuleRepository
from services.points.uow import PointsUnitOfWork
from shared.contracts.envelope import EventEnvelope
from shared.db import driver_connection
from shared.errors import RejectedEvent
from shared.outbox import Outgoing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccountView:
    """A customer's account as a partner app shows it."""

    customer_id: str
    balance: Balance
    tier: Tier
    lifetime_earned: int
    purchase_count: int
    first_purchase_at: datetime | None
    ledger_balance: int
    progress: TierProgress


async def account_view(
    conn: asyncpg.Connection, customer_id: str, now: datetime, rules: RuleBook
) -> AccountView | None:
    """Balance (available, pending with dates, expiring soon), tier and progress; None if
    unknown. On a bare asyncpg connection (the partner API's read pool).

    The read sums the lots and orders whose only effect is known (`StoredBooks`: quiet lots
    add to `available`, plain orders count with their whole spend) and the domain's rules
    judge the rest; tests/integration/points/test_balance_shape.py holds the result equal
    to those rules over every lot and order."""
    policy = rules.in_force(now).tiers
    since = add_months(now, -policy.window_months)
    books = await BookReader(conn).books(customer_id, now, since, EXPIRING_SOON_WINDOW)
    if books is None:
        return None
    balance = balance_at(books.lots, now, books.debt, EXPIRING_SOON_WINDOW)
    activity = qualifying_activity(books.purchases, now, policy)
    return AccountView(
        customer_id=customer_id,
        balance=replace(balance, available=balance.available + books.quiet_points),
        tier=books.tier,
        lifetime_earned=books.lifetime_earned,
        purchase_count=books.purchase_count,
        first_purchase_at=books.first_purchase_at,
        ledger_balance=books.ledger_balance,
        progress=progress_to_next_tier(
            books.tier,
            QualifyingActivity(
                activity.purchases + books.plain.purchases,
                activity.spend_minor + books.plain.spend_minor,
            ),
            policy,
        ),
    )


async def ledger_page(
    conn: asyncpg.Connection,
    customer_id: str,
    wanted: LedgerFilter,
    limit: int,
    before: int | None = None,
) -> list[LedgerEntry]:
    """Newest entries first, at most `limit`, older than entry `before` (keyset cursor)."""
    return await BookReader(conn).page(customer_id, wanted, limit, before)


async def read_account(
    conn: AsyncConnection, customer_id: str, now: datetime, rules: RuleBook | None = None
) -> AccountView | None:
    """`account_view` on a SQLAlchemy connection; pass `rules` (cached by the caller) to save
    reading the rule versions on every call."""
    book = rules if rules is not None else await RuleRepository(conn).book()
    return await account_view(await driver_connection(conn), customer_id, now, book)


class rejecting:  # lower case: used like the function it was, `with rejecting(event):`
    """A broken business rule (unknown currency...) dead-letters the event with its code.

    A class rather than a `@contextmanager` generator: it wraps every purchase, and a
    generator and its manager cost more than the rest of the loop's bookkeeping.
    """

    __slots__ = ("event",)

    def __init__(self, event: EventEnvelope) -> None:
        self.event = event

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        if isinstance(error, PointsRuleError):
            raise rejected(self.event, error) from error


def rejected(event: EventEnvelope, error: PointsRuleError) -> RejectedEvent:
    """What `rejecting` raises: the event dead-lettered with the broken rule's code. For a
    loop over a batch's events, `try`/`except PointsRuleError` around each costs nothing
    until one breaks a rule, where a `rejecting` per event costs an object and two calls."""
    return RejectedEvent(event, error.code, str(error))


def as_of(uow: PointsUnitOfWork, event: EventEnvelope) -> datetime:
    """The moment that decides pending/available: now, or the event's time if later."""
    return max(event.occurred_at, uow.now)


def emit_all(uow: PointsUnitOfWork, topic: str, events: Sequence[Outgoing]) -> None:
    """Queue a run's outgoing events on the unit of work's outbox, in order."""
    for event in events:
        uow.emit(topic, event)


DueBatch = Callable[[PointsUnitOfWork], Awaitable[tuple[int, int]]]
"""Claims and applies one batch of due work; returns (applied, claimed)."""


async def run_in_batches(
    engine: AsyncEngine, now: datetime, apply_batch: DueBatch, batch_size: int
) -> int:
    """Run `apply_batch`, one unit of work (transaction) each, until nothing more is due.

    Stops after a short batch (nothing left) or one that applied nothing (everything left
    is busy and waits for the next run); returns the rows applied.
    """
    total = 0
    while True:
        async with PointsUnitOfWork.begin(engine, lambda: now) as uow:
            applied, claimed = await apply_batch(uow)
        total += applied
        if claimed < batch_size or applied == 0:
            return total
