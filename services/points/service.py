"""Service layer: partner-app and admin commands, and the consumer's wiring.

Each command runs inside the caller's transaction (one per HTTP request), locks the
customer's account row first (the lock protocol of `repository`), applies the domain
rules, writes the books and queues the outgoing event in the outbox. Errors are
`DomainError`s, which the HTTP layer renders as problem+json.

Why fifty concurrent redemptions never overspend: each one takes the account row lock
(`SELECT ... FOR UPDATE`) before reading the lots, so they run one after the other, and
each checks available points (net of debt) at that moment; the lot CHECK constraints and
the ledger trigger refuse anything that would still slip through.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.points import commands
from services.points.book import Account, Changes
from services.points.db import ledger, lots, redemptions
from services.points.domain.balances import Balance
from services.points.domain.errors import InsufficientPointsError
from services.points.domain.lots import LotDraw
from services.points.handlers import points_registry
from services.points.repository import lock_accounts, lot_from_row
from services.points.rules import load_rule_book
from services.points.settings import PointsSettings
from services.points.writes import save_changes
from shared.contracts.envelope import derived_event_id
from shared.contracts.topics import Topics
from shared.errors import Conflict, NotFound, Unprocessable
from shared.kafka.runtime import EventConsumer, utc_now
from shared.outbox import write_to_outbox


class NotEnoughPoints(Conflict):
    code, title = "insufficient_points", "Not enough available points"


class IdempotencyKeyReused(Unprocessable):
    code, title = "idempotency_key_reused", "Idempotency key reused with a different request"


class RedemptionNotFound(NotFound):
    code, title = "redemption_not_found", "No such redemption"


class ClaimDebitNotCancellable(Conflict):
    code, title = (
        "redemption_belongs_to_claim",
        "A catalogue claim's debit is given back only by the claim's own cancellation",
    )


class IdempotencyKeyReserved(Unprocessable):
    code, title = "idempotency_key_reserved", "This Idempotency-Key prefix is reserved"


SAGA_KEY_PREFIX = "saga:"  # the keys of the rewards saga's debits (see `saga.saga_key`)


class AdjustmentConflict(Conflict):
    code, title = "adjustment_conflict", "Adjustment id already used for another adjustment"


@dataclass(frozen=True)
class RedemptionRequest:
    """A partner app's request to spend points, with its idempotency key."""

    customer_id: str
    points: int
    merchant_id: str
    reference: str
    idempotency_key: str

    def fingerprint(self) -> bytes:
        """Tells a retry of this request from a different request under the same key."""
        body = [self.customer_id, self.points, self.merchant_id, self.reference]
        return hashlib.sha256(orjson.dumps(body)).digest()[:16]


@dataclass(frozen=True)
class RedemptionOutcome:
    """A redemption as stored, and the balance after the call."""

    redemption_id: str
    customer_id: str
    points: int
    merchant_id: str
    reference: str
    occurred_at: datetime
    cancelled_at: datetime | None
    balance: Balance
    replayed: bool  # answered from storage (same idempotency key, or already cancelled)


async def redeem(
    conn: AsyncConnection,
    request: RedemptionRequest,
    now: datetime,
    *,
    points_topic: str = Topics.POINTS,
) -> RedemptionOutcome:
    """Debit available points; the same key again returns the same redemption.

    A refused redemption (409) stores nothing, so retrying its key later is evaluated anew.
    """
    if request.points <= 0:
        raise Unprocessable("points to redeem must be a positive integer", code="invalid_points")
    if request.idempotency_key.startswith(SAGA_KEY_PREFIX):
        # A partner holding `saga:<claim>` first would make the claim's debit look applied.
        raise IdempotencyKeyReserved(
            f"Idempotency-Key: keys starting with {SAGA_KEY_PREFIX!r} are reserved",
            field="Idempotency-Key",
        )
    accounts = await lock_accounts(conn, [request.customer_id])
    account = accounts[request.customer_id]
    stored = await _redemption_row(
        conn,
        (redemptions.c.customer_id == request.customer_id)
        & (redemptions.c.idempotency_key == request.idempotency_key),
    )
    if stored is not None:
        if bytes(stored.request_fingerprint) != request.fingerprint():
            raise IdempotencyKeyReused(
                f"idempotency key {request.idempotency_key!r} was used for a different request"
            )
        return _outcome(stored._mapping, account, now, replayed=True)
    redemption_id = derived_event_id(f"redemption:{request.customer_id}", request.idempotency_key)
    redemption = commands.Redemption(
        str(redemption_id), request.points, request.merchant_id, request.reference
    )
    changes = Changes()
    try:
        draws, events = commands.redeem(account, redemption, now, changes)
    except InsufficientPointsError as error:
        raise NotEnoughPoints(
            str(error), requested=error.requested, available=error.available
        ) from error
    await save_changes(conn, accounts, changes)
    row = _redemption_values(request, redemption_id, draws, now)
    await conn.execute(sa.insert(redemptions).values(**row))
    await write_to_outbox(conn, events, points_topic)
    return _outcome(row, account, now, replayed=False)


async def cancel_redemption(
    conn: AsyncConnection, redemption_id: str, now: datetime, *, points_topic: str = Topics.POINTS
) -> RedemptionOutcome:
    """Give the points back to their lots with their original expiry; idempotent.

    A catalogue claim's debit is refused (409): its voucher may already be out, and only
    the saga (`points.debit_reversal_requested`) gives those points back.
    """
    try:
        wanted = uuid.UUID(redemption_id)
    except ValueError:
        raise RedemptionNotFound(f"no redemption {redemption_id}") from None
    found = await _redemption_row(conn, redemptions.c.redemption_id == wanted)
    if found is None:
        raise RedemptionNotFound(f"no redemption {redemption_id}")
    if found.claim_id is not None:
        raise ClaimDebitNotCancellable(
            f"redemption {redemption_id} paid for catalogue claim {found.claim_id}; cancel "
            "the claim in the rewards service instead",
            claim_id=found.claim_id,
        )
    accounts = await lock_accounts(conn, [found.customer_id])
    account = accounts[found.customer_id]
    stored = await _redemption_row(conn, redemptions.c.redemption_id == wanted, lock=True)
    assert stored is not None
    if stored.cancelled_at is not None:
        return _outcome(stored._mapping, account, now, replayed=True)
    draws = tuple(LotDraw(d["lot_id"], d["points"]) for d in stored.draws)
    await _attach_lots(conn, account, {d.lot_id for d in draws})
    redemption = commands.Redemption(
        str(stored.redemption_id), stored.points, stored.merchant_id, stored.reference
    )
    changes = Changes()
    events = commands.cancel(account, redemption, draws, now, changes)
    await save_changes(conn, accounts, changes)
    await conn.execute(
        sa.update(redemptions).where(redemptions.c.redemption_id == wanted).values(cancelled_at=now)
    )
    await write_to_outbox(conn, events, points_topic)
    stored = await _redemption_row(conn, redemptions.c.redemption_id == wanted)
    return _outcome(stored._mapping, account, now, replayed=False)


async def adjust_points(
    conn: AsyncConnection,
    customer_id: str,
    adjustment: commands.Adjustment,
    now: datetime,
    *,
    points_topic: str = Topics.POINTS,
) -> Balance:
    """An administrator's signed correction, kept with who and why; once per adjustment id."""
    if adjustment.points == 0 or not adjustment.reason.strip() or not adjustment.actor.strip():
        raise Unprocessable("an adjustment needs non-zero points, a reason and an actor")
    accounts = await lock_accounts(conn, [customer_id])
    account = accounts[customer_id]
    earlier = (
        await conn.execute(
            sa.select(
                ledger.c.customer_id, ledger.c.points, ledger.c.reason, ledger.c.merchant_id
            ).where(ledger.c.kind == "adjustment", ledger.c.reference == adjustment.adjustment_id)
        )
    ).first()
    if earlier is not None:
        # A retry is the same request in full; anything else under the id (another
        # customer, amount, reason or merchant) is a different adjustment, refused.
        asked = (customer_id, adjustment.points, adjustment.reason, adjustment.merchant_id)
        if tuple(earlier) != asked:
            raise AdjustmentConflict(f"adjustment {adjustment.adjustment_id} already exists")
        return account.balance(now)
    rules = (await load_rule_book(conn)).in_force(now)
    changes = Changes()
    events = commands.adjust(account, adjustment, rules, now, changes)
    await save_changes(conn, accounts, changes)
    await write_to_outbox(conn, events, points_topic)
    return account.balance(now)


def build_consumer(
    settings: PointsSettings,
    engine: AsyncEngine,
    bootstrap_servers: str,
    clock: Callable[[], datetime] = utc_now,
    *,
    after_commit: Callable[[], None] | None = None,
) -> EventConsumer:
    """The points consumer: purchases and returns, and credits requested by rewards.

    `after_commit` runs after each committed batch (the app wakes its outbox relay).
    """
    return EventConsumer(
        group_id=settings.consumer_group,
        topics=[settings.purchases_topic, settings.rewards_topic],
        bootstrap_servers=bootstrap_servers,
        engine=engine,
        registry=points_registry(points_topic=settings.points_topic),
        clock=clock,
        max_batch=settings.max_batch,
        after_commit=after_commit,
    )


async def _redemption_row(
    conn: AsyncConnection, condition: sa.ColumnElement[bool], lock: bool = False
) -> Any:
    query = sa.select(redemptions).where(condition)
    if lock:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def _attach_lots(conn: AsyncConnection, account: Account, lot_ids: set[str]) -> None:
    """Lots a cancellation gives back to that are empty now (not among the live lots)."""
    missing = lot_ids - {lot.lot_id for lot in account.lots}
    if missing:
        rows = await conn.execute(
            sa.select(lots).where(lots.c.lot_id.in_([uuid.UUID(i) for i in missing]))
        )
        account.lots = (*account.lots, *(lot_from_row(r) for r in rows))


def _redemption_values(
    request: RedemptionRequest, redemption_id: uuid.UUID, draws: tuple[LotDraw, ...], now: datetime
) -> dict[str, Any]:
    return {
        "redemption_id": redemption_id,
        "customer_id": request.customer_id,
        "idempotency_key": request.idempotency_key,
        "request_fingerprint": request.fingerprint(),
        "points": request.points,
        "merchant_id": request.merchant_id,
        "reference": request.reference,
        "draws": [{"lot_id": d.lot_id, "points": d.points} for d in draws],
        "occurred_at": now,
        "cancelled_at": None,
    }


def _outcome(
    fields: Mapping[str, Any], account: Account, now: datetime, replayed: bool
) -> RedemptionOutcome:
    return RedemptionOutcome(
        redemption_id=str(fields["redemption_id"]),
        customer_id=fields["customer_id"],
        points=fields["points"],
        merchant_id=fields["merchant_id"],
        reference=fields["reference"],
        occurred_at=fields["occurred_at"],
        cancelled_at=fields["cancelled_at"],
        balance=account.balance(now),
        replayed=replayed,
    )
