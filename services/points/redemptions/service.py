"""Redemptions: spending available points, and giving them back, written once for both
callers: a partner app over HTTP, and the rewards catalogue saga over `loyalty.rewards`.

A catalogue claim's debit IS a redemption (`redeem` with the claim's idempotency key
`saga:<debit_id>`, a prefix partner apps may not use, and `claim_id` set); the saga's
reversal IS a cancellation (`cancel_redemption` of that redemption, for that claim). Only
the announcements differ: a partner's redemption emits `points.redeemed` /
`points.redemption_cancelled`, a claim's debit the saga's answers (`points.debited`,
`points.debit_rejected`, `points.debit_reversed`), written in the same transaction as the
debit, so an answer leaves exactly when the debit commits.

Why fifty concurrent redemptions never overspend: each one takes the account row lock
(`SELECT ... FOR UPDATE`) before reading the lots, so they run one after the other, and
each checks available points (net of debt) at that moment; the lot CHECK constraints and
the ledger trigger refuse anything that would still slip through.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from services.points.domain.balances import Balance
from services.points.domain.book import Account, Changes, LedgerLine
from services.points.domain.errors import InsufficientPointsError
from services.points.domain.ledger import EntryKind
from services.points.domain.lots import LotDraw, LotMovement, redeem_points, settle_debt
from services.points.domain.lots import cancel_redemption as give_back_to_lots
from services.points.redemptions.events import (
    points_debit_rejected,
    points_debit_reversed,
    points_debited,
    points_not_debited,
    points_redeemed,
    points_redemption_cancelled,
)
from services.points.redemptions.repository import StoredRedemption
from services.points.uow import PointsUnitOfWork
from shared.contracts.envelope import derived_event_id
from shared.contracts.rewards import PointsDebitRequested, PointsDebitReversalRequested
from shared.contracts.topics import Topics
from shared.errors import Conflict, NotFound, Unprocessable

log = logging.getLogger(__name__)
SAGA_KEY_PREFIX = "saga:"  # the keys of the rewards saga's debits (see `saga_key`)


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


def saga_key(debit_id: str) -> str:
    """The redemption idempotency key of a catalogue claim's debit."""
    return f"{SAGA_KEY_PREFIX}{debit_id}"


@dataclass(frozen=True)
class RedemptionRequest:
    """A request to spend points, with its idempotency key (and the claim it pays for)."""

    customer_id: str
    points: int
    merchant_id: str
    reference: str
    idempotency_key: str
    claim_id: str | None = None  # a rewards catalogue claim's debit

    @classmethod
    def for_claim(cls, event: PointsDebitRequested) -> RedemptionRequest:
        """The redemption a catalogue claim's debit request asks for."""
        data = event.data
        key = saga_key(data.debit_id)
        return cls(
            event.customer_id, data.points, data.merchant_id, data.reference, key, data.debit_id
        )

    @property
    def redemption_id(self) -> uuid.UUID:
        """Derived from customer and key: a retry finds the redemption it made."""
        return derived_event_id(f"redemption:{self.customer_id}", self.idempotency_key)

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
    uow: PointsUnitOfWork,
    request: RedemptionRequest,
    *,
    points_topic: str = Topics.POINTS,
    accounts: dict[str, Account] | None = None,
    now: datetime | None = None,
) -> RedemptionOutcome:
    """Spend available points, soonest-expiring lot first; the same key again returns the
    same redemption, a different request under it is `IdempotencyKeyReused`.

    `NotEnoughPoints` (409) stores nothing, so retrying the key later is evaluated anew.
    `accounts`: already locked by the caller (a consumer batch locks its customers at once).
    """
    _check(request)
    now = now or uow.now
    accounts = accounts if accounts is not None else await uow.accounts.lock([request.customer_id])
    account = accounts[request.customer_id]
    stored = await uow.redemptions.by_key(request.customer_id, request.idempotency_key)
    if stored is not None:
        if stored.request_fingerprint != request.fingerprint():
            raise IdempotencyKeyReused(
                f"idempotency key {request.idempotency_key!r} was used for a different request"
            )
        return _outcome(stored, account, now, replayed=True)
    changes = Changes()
    try:
        movement = redeem_points(account.lots, request.points, now, account.debt)
    except InsufficientPointsError as error:
        raise NotEnoughPoints(
            str(error), requested=error.requested, available=error.available
        ) from error
    redemption = _new_redemption(request, movement.draws, now)
    changes.move_lots(account, movement)
    changes.write(_line(account, EntryKind.REDEMPTION, -request.points, redemption, now))
    await uow.save(accounts, changes)
    await uow.redemptions.add(redemption)
    if request.claim_id is None:  # a claim's debit is announced by the saga's answer
        uow.emit(points_topic, points_redeemed(account, _fields(redemption), now))
    return _outcome(redemption, account, now, replayed=False)


async def cancel_redemption(
    uow: PointsUnitOfWork,
    redemption_id: str,
    *,
    points_topic: str = Topics.POINTS,
    claim_id: str | None = None,
    accounts: dict[str, Account] | None = None,
    now: datetime | None = None,
) -> RedemptionOutcome:
    """Give the points back to the very lots they came from (original expiry); idempotent.

    A catalogue claim's debit is given back only for that claim (`claim_id`, the saga's
    reversal): its voucher may already be out, so a partner's cancel is 409.
    """
    now = now or uow.now
    wanted = _redemption_uuid(redemption_id)
    found = await _cancellable(uow, redemption_id, claim_id, accounts)
    accounts = accounts if accounts is not None else await uow.accounts.lock([found.customer_id])
    account = accounts[found.customer_id]
    stored = await uow.redemptions.get(wanted, lock=True)
    assert stored is not None
    if stored.cancelled_at is not None:
        return _outcome(stored, account, now, replayed=True)
    await uow.accounts.attach_lots(account, {d.lot_id for d in stored.draws})
    changes = Changes()
    lots = give_back_to_lots(account.lots, stored.draws)
    changes.move_lots(account, LotMovement(lots, stored.draws))
    changes.write(_line(account, EntryKind.REDEMPTION_CANCEL, stored.points, stored, now))
    _settle_debt(account, now, changes)
    await uow.save(accounts, changes)
    await uow.redemptions.mark_cancelled(wanted, now)
    if claim_id is None:  # a claim's reversal is announced by the saga's answer
        event = points_redemption_cancelled(
            account, str(stored.redemption_id), stored.merchant_id, stored.points, now
        )
        uow.emit(points_topic, event)
    return _outcome(stored, account, now, replayed=False, cancelled_at=now)


async def redemption_merchant(uow: PointsUnitOfWork, redemption_id: str) -> str:
    """The merchant a redemption was made at (whose key may cancel it); `RedemptionNotFound`
    when there is no such redemption."""
    merchant = await uow.redemptions.merchant_of(_redemption_uuid(redemption_id))
    if merchant is None:
        raise RedemptionNotFound(f"no redemption {redemption_id}")
    return merchant


async def debit_for_claims(
    uow: PointsUnitOfWork, requests: Sequence[PointsDebitRequested], points_topic: str
) -> None:
    """The saga's debits: each claim's redemption made once, answered on `points_topic`
    with `points.debited`, or `points.debit_rejected` when the points fall short."""
    accounts = await uow.accounts.lock(e.customer_id for e in requests)
    for event in requests:
        account = accounts[event.customer_id]
        now = max(uow.now, event.occurred_at)
        asked = RedemptionRequest.for_claim(event)
        try:
            outcome = await redeem(
                uow, asked, points_topic=points_topic, accounts=accounts, now=now
            )
        except NotEnoughPoints as refused:
            uow.emit(points_topic, points_debit_rejected(account, event, refused.code, now))
            continue
        except IdempotencyKeyReused:
            outcome = None  # another request under this debit id: the first one stands
        if outcome is None or outcome.replayed:
            log.info("debit %s already applied; request is a no-op", event.data.debit_id)
            continue
        uow.emit(points_topic, points_debited(account, event, outcome.redemption_id, now))


async def reverse_claim_debits(
    uow: PointsUnitOfWork, requests: Sequence[PointsDebitReversalRequested], points_topic: str
) -> None:
    """The saga's compensations: each claim's debit given back once (`points.debit_reversed`);
    for a debit never made (rejected, or its request never arrived) the answer is
    `points.debit_rejected` with reason `not_debited`, or the claim would wait forever."""
    accounts = await uow.accounts.lock(e.customer_id for e in requests)
    for event in requests:
        account = accounts[event.customer_id]
        now = max(uow.now, event.occurred_at)
        debit = event.data.debit_id
        redemption_id = str(
            RedemptionRequest(event.customer_id, 0, "", "", saga_key(debit)).redemption_id
        )
        try:
            outcome = await cancel_redemption(
                uow,
                redemption_id,
                points_topic=points_topic,
                claim_id=debit,
                accounts=accounts,
                now=now,
            )
        except RedemptionNotFound:
            uow.emit(points_topic, points_not_debited(account, event, now))
            continue
        if outcome.replayed:
            log.info("debit %s: already given back", debit)
            continue
        answer = points_debit_reversed(account, event, redemption_id, outcome.points, now)
        uow.emit(points_topic, answer)


async def _cancellable(
    uow: PointsUnitOfWork,
    redemption_id: str,
    claim_id: str | None,
    accounts: dict[str, Account] | None,
) -> StoredRedemption:
    """The redemption to give back, if this caller may: a claim's debit only for its claim."""
    found = await uow.redemptions.get(_redemption_uuid(redemption_id))
    if found is None or (accounts is not None and found.customer_id not in accounts):
        raise RedemptionNotFound(f"no redemption {redemption_id}")
    if found.claim_id != claim_id:
        raise ClaimDebitNotCancellable(
            f"redemption {redemption_id} paid for catalogue claim {found.claim_id}; cancel "
            "the claim in the rewards service instead",
            claim_id=found.claim_id,
        )
    return found


def _check(request: RedemptionRequest) -> None:
    if request.points <= 0:
        raise Unprocessable("points to redeem must be a positive integer", code="invalid_points")
    if request.claim_id is None and request.idempotency_key.startswith(SAGA_KEY_PREFIX):
        # A partner holding `saga:<claim>` first would make the claim's debit look applied.
        raise IdempotencyKeyReserved(
            f"Idempotency-Key: keys starting with {SAGA_KEY_PREFIX!r} are reserved",
            field="Idempotency-Key",
        )


def _redemption_uuid(redemption_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(redemption_id)
    except ValueError:
        raise RedemptionNotFound(f"no redemption {redemption_id}") from None


def _new_redemption(
    request: RedemptionRequest, draws: tuple[LotDraw, ...], now: datetime
) -> StoredRedemption:
    return StoredRedemption(
        redemption_id=request.redemption_id,
        customer_id=request.customer_id,
        idempotency_key=request.idempotency_key,
        request_fingerprint=request.fingerprint(),
        points=request.points,
        merchant_id=request.merchant_id,
        reference=request.reference,
        draws=draws,
        claim_id=request.claim_id,
        occurred_at=now,
        cancelled_at=None,
    )


def _line(
    account: Account, kind: EntryKind, points: int, redemption: StoredRedemption, at: datetime
) -> LedgerLine:
    return LedgerLine(
        account.customer_id,
        kind,
        points,
        str(redemption.redemption_id),
        at,
        merchant_id=redemption.merchant_id,
    )


def _fields(redemption: StoredRedemption) -> dict[str, object]:
    return {
        "redemption_id": str(redemption.redemption_id),
        "merchant_id": redemption.merchant_id,
        "reference": redemption.reference,
        "points": redemption.points,
    }


def _settle_debt(account: Account, now: datetime, changes: Changes) -> None:
    if account.debt:
        settled = settle_debt(account.lots, account.debt, now)
        changes.move_lots(account, settled)
        account.debt = settled.debt


def _outcome(
    stored: StoredRedemption,
    account: Account,
    now: datetime,
    *,
    replayed: bool,
    cancelled_at: datetime | None = None,
) -> RedemptionOutcome:
    return RedemptionOutcome(
        redemption_id=str(stored.redemption_id),
        customer_id=stored.customer_id,
        points=stored.points,
        merchant_id=stored.merchant_id,
        reference=stored.reference,
        occurred_at=stored.occurred_at,
        cancelled_at=cancelled_at or stored.cancelled_at,
        balance=account.balance(now),
        replayed=replayed,
    )
