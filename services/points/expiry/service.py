"""Expiry: what is left of a lot when its validity ends is taken out, with a ledger entry.

A due-time job (see `jobs`), safe with several instances and O(lots due): lots come due
through a partial index (`lots.expires_at WHERE remaining > 0`) claimed with `FOR UPDATE
SKIP LOCKED`; an account busy in a consumer or an HTTP request is skipped, never waited
for, and its lots expire at the next run. Each batch is one transaction: ledger entries,
lot counters and the outgoing events (through the outbox) commit together. `now` comes
from the caller (an injectable clock), so tests can jump in time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.points.domain.book import Account, Changes, LedgerLine
from services.points.domain.ledger import EntryKind
from services.points.domain.lots import Lot, LotMovement
from services.points.domain.lots import expire_due_lots as expire_lots_due
from services.points.domain.moments import require_aware
from services.points.expiry.events import points_expired
from services.points.ledger.service import run_in_batches
from services.points.uow import PointsUnitOfWork
from shared.contracts.envelope import EventEnvelope
from shared.contracts.topics import Topics


async def expire_due_points(
    engine: AsyncEngine, now: datetime, *, points_topic: str = Topics.POINTS, batch_size: int = 500
) -> int:
    """Expire every lot due at `now`, one batch per transaction; returns the lots expired."""
    require_aware(now, "now")
    return await run_in_batches(
        engine, now, lambda uow: expire_batch(uow, points_topic, batch_size), batch_size
    )


async def expire_batch(
    uow: PointsUnitOfWork, points_topic: str, batch_size: int
) -> tuple[int, int]:
    """Claim up to `batch_size` due lots and expire those whose account is free.

    Returns (lots expired, lots claimed).
    """
    now = uow.now
    claimed = await uow.expiry.claim_due_lots(now, batch_size)
    if not claimed:
        return 0, 0
    found = await uow.accounts.lock_if_free(row.customer_id for row in claimed)
    changes = Changes()
    for customer_id, account in found.items():
        mine = {str(row.lot_id) for row in claimed if row.customer_id == customer_id}
        for event in expire_claimed_lots(account, mine, now, changes):
            uow.emit(points_topic, event)
    await uow.save(found, changes)
    return len(changes.ledger), len(claimed)


def expire_claimed_lots(
    account: Account, lot_ids: set[str], now: datetime, changes: Changes
) -> list[EventEnvelope]:
    """Expire what is left of the claimed lots whose expiry has come, soonest first."""
    events: list[EventEnvelope] = []
    due = sorted((lot for lot in account.lots if lot.lot_id in lot_ids), key=_expiry_key)
    for lot in due:
        movement = expire_lots_due([lot], now)
        if not movement.draws:
            continue
        points = movement.points
        reference = f"{lot.lot_id}:{lot.expired}"
        changes.move_lots(account, _merge(account.lots, movement))
        changes.write(
            LedgerLine(
                account.customer_id,
                EntryKind.EXPIRY,
                -points,
                reference,
                lot.expires_at,
                merchant_id=lot.merchant_id,
            )
        )
        events.append(points_expired(account, lot, points, reference, now))
    return events


def _merge(lots: tuple[Lot, ...], movement: LotMovement) -> LotMovement:
    """A movement computed on some lots, applied to the whole account."""
    updated = {lot.lot_id: lot for lot in movement.lots}
    return LotMovement(tuple(updated.get(lot.lot_id, lot) for lot in lots), movement.draws)


def _expiry_key(lot: Lot) -> tuple[datetime, str]:
    return (lot.expires_at, lot.lot_id)
