"""Catalogue claims as a saga over events, with the outbox on both sides.

    POST claim --(one rewards transaction)--> stock reserved, claim `requested`,
        points.debit_requested in the outbox
    points service --(one points transaction)--> points spent + points.debited,
        or nothing spent + points.debit_rejected
    rewards consumer --(one rewards transaction)--> voucher issued, claim `issued`;
        or claim `rejected` and the unit of stock released

Why it always finishes: every step is one local transaction that also writes the next
message to its outbox, and every message is applied once (processed events, unique
redemption key, unique voucher origin). A crash at any point leaves a committed state
whose next message is either in an outbox (the relay sends it after restart) or on a
topic at an uncommitted offset (the consumer reads it after restart). Points are spent
only in the transaction that emits points.debited, and that answer is turned into a
voucher by the transaction that consumes it, so "points spent, no voucher" is only
ever a state in flight. A debit that arrives for a claim that can no longer take it
(not `requested`) is given back: rewards asks for a reversal and marks the claim
`cancelled`, then `compensated` when the points service confirms. A claim the points
service never answers is cancelled the same way by a due-time job (`time_out_claims`, below): after
`waited` (REWARDS_CLAIM_TIMEOUT_SECONDS) the unit goes back to stock, the claim becomes
`cancelled` (reason `points_timeout`) and `points.debit_reversal_requested` is sent. That
request is keyed by the customer like the debit request and leaves the outbox after it, so
the points service reads it after the debit request: a debit it made is given back, one it
rejected or never made gives nothing back. No voucher is ever issued for a cancelled claim.

Stock: the item row is locked (`FOR UPDATE`) while the per-customer limit and the stock
are checked and `units_claimed` is raised, and a CHECK keeps `units_claimed <= total_stock`,
so twenty concurrent claims on five units give exactly five.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from services.rewards.catalogue.service import ItemNotFound, item_from_row
from services.rewards.claims.events import debit_requested, debit_reversal_requested
from services.rewards.domain.catalogue import (
    Claimant,
    ClaimState,
    ItemUsage,
    claim_ineligibility,
    may_claim_for,
)
from services.rewards.vouchers.service import VoucherRequest, issue_voucher
from shared.contracts.envelope import EventEnvelope, derived_event_id
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable

if TYPE_CHECKING:
    from services.rewards.uow import RewardsUnitOfWork

log = logging.getLogger(__name__)
HOUSE_MERCHANT = "rewards"  # whom points are spent with when an item names no merchant
SETTLED = ("issued", "rejected", "compensated")
DEFAULT_CLAIM_TIMEOUT = timedelta(minutes=5)
TIMEOUT_REASON = "points_timeout"


class ClaimNotFound(NotFound):
    code, title = "claim_not_found", "No such claim"


class ClaimRefused(Conflict):
    code, title = "claim_refused", "The item cannot be claimed"


class IdempotencyKeyReused(Unprocessable):
    code, title = "idempotency_key_reused", "Idempotency key reused with a different request"


class ItemOfAnotherMerchant(Forbidden):
    code, title = "merchant_mismatch", "API key lacks permission"


def _ensure_claimable_by(key_merchant: str | None, item_merchant: str | None) -> None:
    if not may_claim_for(key_merchant, item_merchant):
        raise ItemOfAnotherMerchant(
            "this API key is bound to another merchant than the item's",
            field="item_id",
            merchant_id=item_merchant,
        )


async def _item_row(uow: RewardsUnitOfWork, item_id: str, lock: bool = True) -> Any:
    row = await uow.catalogue.get(item_id, lock=lock)
    if row is None:
        raise ItemNotFound(f"no catalogue item {item_id}", field="item_id")
    return row


async def _earlier_claim(
    uow: RewardsUnitOfWork, customer_id: str, item_id: str, idempotency_key: str
) -> Any:
    """The claim this key already made for the customer, if any; refuses a key reused for
    another item (same key, same body: the same claim)."""
    earlier = await uow.claims.by_idempotency_key(customer_id, idempotency_key)
    if earlier is not None and earlier.item_id != item_id:
        raise IdempotencyKeyReused(
            f"idempotency key {idempotency_key!r} was used to claim {earlier.item_id}, "
            f"not {item_id}",
            field="idempotency_key",
        )
    return earlier


async def request_claim(
    uow: RewardsUnitOfWork,
    customer_id: str,
    item_id: str,
    idempotency_key: str | None = None,
    key_merchant: str | None = None,
) -> Any:
    """Reserve a unit and ask the points service for the debit; returns the claim row.

    `key_merchant` is the merchant the caller's API key is bound to (None: unbound); such
    a key claims only its merchant's items and the programme's own (no merchant).
    """
    if idempotency_key is not None:
        earlier = await _earlier_claim(uow, customer_id, item_id, idempotency_key)
        if earlier is not None:
            row = await _item_row(uow, item_id, lock=False)
            _ensure_claimable_by(key_merchant, row.merchant_id)
            return earlier
    row = await _item_row(uow, item_id)
    _ensure_claimable_by(key_merchant, row.merchant_id)
    return await _reserve(uow, row, customer_id, idempotency_key)


async def _reserve(
    uow: RewardsUnitOfWork, row: Any, customer_id: str, idempotency_key: str | None
) -> Any:
    item = item_from_row(row)
    usage = ItemUsage(row.units_claimed, await uow.claims.holding_count(item.item_id, customer_id))
    found = await uow.claims.claimant(customer_id)
    claimant = (
        Claimant(customer_id, found.tier, found.available)
        if found
        else Claimant(customer_id, "member", 0)
    )
    refusal = claim_ineligibility(item, claimant, usage, uow.now)
    if refusal is not None:
        raise ClaimRefused(refusal.explanation, code=refusal.reason.value, item_id=item.item_id)
    await uow.claims.take_units(item.item_id, 1)
    claim_id = uuid.uuid4()
    merchant_id = item.merchant_id or HOUSE_MERCHANT
    await uow.claims.add(
        {
            "claim_id": claim_id,
            "item_id": item.item_id,
            "customer_id": customer_id,
            "points": item.points_cost,
            "merchant_id": merchant_id,
            "state": ClaimState.REQUESTED.value,
            "idempotency_key": idempotency_key,
            "created_at": uow.now,
            "updated_at": uow.now,
        }
    )
    uow.emit_rewards(
        debit_requested(customer_id, claim_id, item.points_cost, merchant_id, item.item_id, uow.now)
    )
    return await uow.claims.get(claim_id)


async def _issue(uow: RewardsUnitOfWork, claim: Any) -> None:
    item = await _item_row(uow, claim.item_id, lock=False)
    request = VoucherRequest(
        claim.customer_id,
        item.reward_code,
        "catalogue",
        f"claim:{claim.claim_id}",
        merchant_id=item.merchant_id,
        valid_days=item.voucher_valid_days,
    )
    voucher_id = await issue_voucher(uow, request, uow.now)
    await uow.claims.set_state(claim.claim_id, ClaimState.ISSUED, uow.now, voucher_id=voucher_id)


async def _give_back(uow: RewardsUnitOfWork, claim: Any, event: EventEnvelope) -> None:
    log.warning(
        "claim %s is %s but its points were debited: asking for them back",
        claim.claim_id,
        claim.state,
    )
    reason = f"claim is {claim.state}"
    uow.emit_rewards(
        debit_reversal_requested(claim.customer_id, claim.claim_id, reason, event.event_id, uow.now)
    )
    if claim.state == ClaimState.REQUESTED.value:
        await uow.claims.take_units(claim.item_id, -1)
    if claim.state not in ("issued", "compensated"):
        await uow.claims.set_state(
            claim.claim_id, ClaimState.CANCELLED, uow.now, reason="cancelled"
        )


def _claim_id(event: EventEnvelope) -> uuid.UUID | None:
    try:
        return uuid.UUID(event.data.debit_id)
    except ValueError:
        return None  # a debit some other saga asked for


async def _answer(uow: RewardsUnitOfWork, event: EventEnvelope, claim: Any) -> None:
    requested = claim.state == ClaimState.REQUESTED.value
    cancelled = claim.state == ClaimState.CANCELLED.value
    if event.type == "points.debited":
        # Keep the points service's redemption behind the debit: a later cancellation of
        # that redemption (outside the saga) names only it.
        if claim.redemption_id is None:
            await uow.claims.remember_redemption(claim.claim_id, event.data.redemption_id)
        if requested:
            await _issue(uow, claim)
        elif claim.state != ClaimState.ISSUED.value:
            await _give_back(uow, claim, event)
    elif event.type == "points.debit_rejected" and requested:
        await uow.claims.take_units(claim.item_id, -1)
        await uow.claims.set_state(
            claim.claim_id, ClaimState.REJECTED, uow.now, reason=event.data.reason
        )
    elif event.type == "points.debit_rejected" and cancelled:
        # Cancelled while waiting (timed out), and nothing was spent: settled.
        await uow.claims.set_state(claim.claim_id, ClaimState.REJECTED, uow.now)
    elif event.type == "points.debit_reversed" and cancelled:
        await uow.claims.set_state(claim.claim_id, ClaimState.COMPENSATED, uow.now)


async def apply_debit_answers(uow: RewardsUnitOfWork, events: Sequence[EventEnvelope]) -> None:
    """The points service's answers move each claim on, in order.

    Every claim of the run is locked first, in one statement and in id order, and only
    then are items touched: the timeout job takes claims (SKIP LOCKED) before items too,
    so neither ever waits for a claim while holding an item.
    """
    ids = {claim_id for event in events if (claim_id := _claim_id(event)) is not None}
    if not ids:
        return
    claims = await uow.claims.lock_many(ids)
    for event in events:
        claim_id = _claim_id(event)
        if claim_id is not None and claim_id in claims:
            await _answer(uow, event, claims[claim_id])
            claims[claim_id] = await uow.claims.get(claim_id)


async def record_returned_redemptions(
    uow: RewardsUnitOfWork, events: Sequence[EventEnvelope]
) -> None:
    """Remember every redemption the points service gave back outside the saga (a
    `points.redemption_cancelled`); log the ones behind a claim, whose voucher stays valid.
    `GET /v1/admin/invariants` joins them to the claims."""
    rows = [
        {
            "redemption_id": e.data.redemption_id,
            "customer_id": e.customer_id,
            "merchant_id": e.data.merchant_id,
            "points": e.data.points,
            "returned_at": e.occurred_at,
        }
        for e in events
    ]
    for claim in await uow.claims.record_returned(rows):
        log.error(
            "the points of claim %s were given back outside the saga; its voucher %s is kept",
            claim.claim_id,
            claim.voucher_id,
        )


async def time_out_claims(
    uow: RewardsUnitOfWork, limit: int, waited: timedelta = DEFAULT_CLAIM_TIMEOUT
) -> int:
    """Cancel up to `limit` claims `requested` for longer than `waited`; returns how many.

    Costs O(claims due) through the partial index on `requested`; a claim the consumer is
    settling right now is left for the next pass.
    """
    due = await uow.claims.cancel_unanswered(uow.now - waited, limit, uow.now, TIMEOUT_REASON)
    if not due:
        return 0
    await uow.claims.release_units(Counter(row.item_id for row in due))
    for row in due:
        cause = derived_event_id(row.claim_id, TIMEOUT_REASON)
        uow.emit_rewards(
            debit_reversal_requested(row.customer_id, row.claim_id, TIMEOUT_REASON, cause, uow.now)
        )
    return len(due)


def may_see_claim(key_merchant: str | None, claim: Any) -> bool:
    """A key bound to a merchant reads only the claims it could have made (its merchant's
    items and the programme's own); the others answer as unknown."""
    item_merchant = None if claim.merchant_id == HOUSE_MERCHANT else claim.merchant_id
    return may_claim_for(key_merchant, item_merchant)
