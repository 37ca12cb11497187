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
service never answers is cancelled the same way by a due-time job (`claim_timeouts`).

Stock: the item row is locked (`FOR UPDATE`) while the per-customer limit and the stock
are checked and `units_claimed` is raised, and a CHECK keeps `units_claimed <= total_stock`,
so twenty concurrent claims on five units give exactly five.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.compensation import Delivery
from services.rewards.db import (
    catalogue_claims,
    catalogue_items,
    customers,
    vouchers,
)
from services.rewards.domain.catalogue import (
    CatalogueItem,
    Claimant,
    ClaimState,
    ItemUsage,
    claim_ineligibility,
    holds_stock,
    may_claim_for,
)
from services.rewards.events import rewards_event
from services.rewards.issuing import VoucherRequest, issue_voucher, voucher_view
from services.rewards.topics import RewardsTopics
from shared.contracts.envelope import EventEnvelope
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.kafka.handlers import BatchContext
from shared.outbox import OutboxWriter

log = logging.getLogger(__name__)
HOUSE_MERCHANT = "rewards"  # whom points are spent with when an item names no merchant
_HOLDING = [s.value for s in ClaimState if holds_stock(s)]
SETTLED = ("issued", "rejected", "compensated")


class ItemNotFound(NotFound):
    code, title = "catalogue_item_not_found", "No such catalogue item"


class ClaimNotFound(NotFound):
    code, title = "claim_not_found", "No such claim"


class ClaimRefused(Conflict):
    code, title = "claim_refused", "The item cannot be claimed"


class IdempotencyKeyReused(Unprocessable):
    code, title = "idempotency_key_reused", "Idempotency key reused with a different request"


class ItemOfAnotherMerchant(Forbidden):
    code, title = "merchant_mismatch", "API key lacks permission"


# Two keys (customer, idempotency key): no separator to confuse "a:b"+"c" with "a"+"b:c".
_CLAIM_KEY_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext(:customer), hashtext(:key))")


def item_from_row(row: Any) -> CatalogueItem:
    return CatalogueItem(
        item_id=row.item_id,
        reward_code=row.reward_code,
        points_cost=row.points_cost,
        claimable_from=row.claimable_from,
        claimable_until=row.claimable_until,
        voucher_valid_for=timedelta(days=row.voucher_valid_days),
        total_stock=row.total_stock,
        budget_minor=row.budget_minor,
        unit_cost_minor=row.unit_cost_minor,
        per_customer_limit=row.per_customer_limit,
        eligible_tiers=frozenset(row.eligible_tiers),
        merchant_id=row.merchant_id,
    )


async def _claimant(conn: AsyncConnection, customer_id: str) -> Claimant:
    row = (
        await conn.execute(
            sa.select(customers.c.tier, customers.c.available).where(
                customers.c.customer_id == customer_id
            )
        )
    ).first()
    return (
        Claimant(customer_id, row.tier, row.available)
        if row
        else Claimant(customer_id, "member", 0)
    )


async def claim_row(conn: AsyncConnection, claim_id: uuid.UUID, lock: bool = False) -> Any:
    query = sa.select(catalogue_claims).where(catalogue_claims.c.claim_id == claim_id)
    return (await conn.execute(query.with_for_update() if lock else query)).first()


async def _earlier_claim(
    conn: AsyncConnection, customer_id: str, item_id: str, idempotency_key: str
) -> Any:
    """The claim this key already made for the customer, if any; refuses a key reused for
    another item (same key, same body: the same claim). Same-key requests queue on a lock,
    so two at once cannot both find nothing and both insert."""
    await conn.execute(_CLAIM_KEY_LOCK, {"customer": customer_id, "key": idempotency_key})
    earlier = (
        await conn.execute(
            sa.select(catalogue_claims).where(
                catalogue_claims.c.customer_id == customer_id,
                catalogue_claims.c.idempotency_key == idempotency_key,
            )
        )
    ).first()
    if earlier is not None and earlier.item_id != item_id:
        raise IdempotencyKeyReused(
            f"idempotency key {idempotency_key!r} was used to claim {earlier.item_id}, "
            f"not {item_id}",
            field="idempotency_key",
        )
    return earlier


def _ensure_claimable_by(key_merchant: str | None, item_merchant: str | None) -> None:
    if not may_claim_for(key_merchant, item_merchant):
        raise ItemOfAnotherMerchant(
            "this API key is bound to another merchant than the item's",
            field="item_id",
            merchant_id=item_merchant,
        )


async def _item_row(conn: AsyncConnection, item_id: str, lock: bool = True) -> Any:
    query = sa.select(catalogue_items).where(catalogue_items.c.item_id == item_id)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise ItemNotFound(f"no catalogue item {item_id}", field="item_id")
    return row


async def request_claim(
    conn: AsyncConnection,
    outbox: OutboxWriter,
    topics: RewardsTopics,
    customer_id: str,
    item_id: str,
    now: datetime,
    idempotency_key: str | None = None,
    key_merchant: str | None = None,
) -> Any:
    """Reserve a unit and ask the points service for the debit; returns the claim row.

    `key_merchant` is the merchant the caller's API key is bound to (None: unbound); such
    a key claims only its merchant's items and the programme's own (no merchant).
    """
    if idempotency_key is not None:
        earlier = await _earlier_claim(conn, customer_id, item_id, idempotency_key)
        if earlier is not None:
            row = await _item_row(conn, item_id, lock=False)
            _ensure_claimable_by(key_merchant, row.merchant_id)
            return earlier
    row = await _item_row(conn, item_id)
    _ensure_claimable_by(key_merchant, row.merchant_id)
    item = item_from_row(row)
    return await _reserve(conn, outbox, topics, item, row, customer_id, now, idempotency_key)


async def _reserve(
    conn: AsyncConnection,
    outbox: OutboxWriter,
    topics: RewardsTopics,
    item: CatalogueItem,
    row: Any,
    customer_id: str,
    now: datetime,
    idempotency_key: str | None,
) -> Any:
    item_id = item.item_id
    mine = await conn.scalar(
        sa.select(sa.func.count()).where(
            catalogue_claims.c.item_id == item_id,
            catalogue_claims.c.customer_id == customer_id,
            catalogue_claims.c.state.in_(_HOLDING),
        )
    )
    usage = ItemUsage(row.units_claimed, int(mine or 0))
    refusal = claim_ineligibility(item, await _claimant(conn, customer_id), usage, now)
    if refusal is not None:
        raise ClaimRefused(refusal.explanation, code=refusal.reason.value, item_id=item_id)
    await conn.execute(
        sa.update(catalogue_items)
        .where(catalogue_items.c.item_id == item_id)
        .values(units_claimed=catalogue_items.c.units_claimed + 1)
    )
    claim_id = uuid.uuid4()
    values = {
        "claim_id": claim_id,
        "item_id": item_id,
        "customer_id": customer_id,
        "points": item.points_cost,
        "merchant_id": item.merchant_id or HOUSE_MERCHANT,
        "state": ClaimState.REQUESTED.value,
        "idempotency_key": idempotency_key,
        "created_at": now,
        "updated_at": now,
    }
    await conn.execute(sa.insert(catalogue_claims).values(**values))
    debit = {
        "debit_id": str(claim_id),
        "points": item.points_cost,
        "merchant_id": values["merchant_id"],
        "reference": f"catalogue:{item_id}",
    }
    outbox.emit(
        topics.rewards, rewards_event("points.debit_requested", customer_id, claim_id, now, debit)
    )
    return await claim_row(conn, claim_id)


async def _set_state(
    conn: AsyncConnection, claim_id: uuid.UUID, state: ClaimState, now: datetime, **more: Any
) -> None:
    await conn.execute(
        sa.update(catalogue_claims)
        .where(catalogue_claims.c.claim_id == claim_id)
        .values(state=state.value, updated_at=now, **more)
    )


async def _release_unit(conn: AsyncConnection, item_id: str) -> None:
    await conn.execute(
        sa.update(catalogue_items)
        .where(catalogue_items.c.item_id == item_id)
        .values(units_claimed=catalogue_items.c.units_claimed - 1)
    )


async def _issue(ctx: BatchContext, delivery: Delivery, claim: Any) -> None:
    item = (
        await ctx.conn.execute(
            sa.select(catalogue_items).where(catalogue_items.c.item_id == claim.item_id)
        )
    ).one()
    request = VoucherRequest(
        claim.customer_id,
        item.reward_code,
        "catalogue",
        f"claim:{claim.claim_id}",
        merchant_id=item.merchant_id,
        valid_days=item.voucher_valid_days,
    )
    voucher_id = await issue_voucher(
        ctx.conn, delivery.outbox, delivery.topics.rewards, request, ctx.now
    )
    await _set_state(ctx.conn, claim.claim_id, ClaimState.ISSUED, ctx.now, voucher_id=voucher_id)


async def _give_back(
    ctx: BatchContext, delivery: Delivery, claim: Any, event: EventEnvelope
) -> None:
    log.warning(
        "claim %s is %s but its points were debited: asking for them back",
        claim.claim_id,
        claim.state,
    )
    data = {"debit_id": str(claim.claim_id), "reason": f"claim is {claim.state}"}
    ask = rewards_event(
        "points.debit_reversal_requested", claim.customer_id, event.event_id, ctx.now, data
    )
    delivery.outbox.emit(delivery.topics.rewards, ask)
    if claim.state == ClaimState.REQUESTED.value:
        await _release_unit(ctx.conn, claim.item_id)
    if claim.state not in ("issued", "compensated"):
        await _set_state(
            ctx.conn, claim.claim_id, ClaimState.CANCELLED, ctx.now, reason="cancelled"
        )


def _claim_id(event: EventEnvelope) -> uuid.UUID | None:
    try:
        return uuid.UUID(event.data.debit_id)
    except ValueError:
        return None  # a debit some other saga asked for


async def _remember_redemption(ctx: BatchContext, claim: Any, event: EventEnvelope) -> None:
    """Keep the points service's redemption behind the debit: a later cancellation of that
    redemption (outside the saga) names only it."""
    if claim.redemption_id is None:
        await ctx.conn.execute(
            sa.update(catalogue_claims)
            .where(catalogue_claims.c.claim_id == claim.claim_id)
            .values(redemption_id=event.data.redemption_id)
        )


async def _answer(ctx: BatchContext, delivery: Delivery, event: EventEnvelope, claim: Any) -> None:
    if event.type == "points.debited":
        await _remember_redemption(ctx, claim, event)
    requested = claim.state == ClaimState.REQUESTED.value
    cancelled = claim.state == ClaimState.CANCELLED.value
    if event.type == "points.debited":
        if requested:
            await _issue(ctx, delivery, claim)
        elif claim.state != ClaimState.ISSUED.value:
            await _give_back(ctx, delivery, claim, event)
    elif event.type == "points.debit_rejected" and requested:
        await _release_unit(ctx.conn, claim.item_id)
        await _set_state(
            ctx.conn, claim.claim_id, ClaimState.REJECTED, ctx.now, reason=event.data.reason
        )
    elif event.type == "points.debit_rejected" and cancelled:
        # Cancelled while waiting (timed out), and nothing was spent: settled.
        await _set_state(ctx.conn, claim.claim_id, ClaimState.REJECTED, ctx.now)
    elif event.type == "points.debit_reversed" and cancelled:
        await _set_state(ctx.conn, claim.claim_id, ClaimState.COMPENSATED, ctx.now)


async def apply_debit_answers(
    ctx: BatchContext, events: Sequence[EventEnvelope], delivery: Delivery
) -> None:
    """The points service's answers move each claim on, in order.

    Every claim of the run is locked first, in one statement and in id order, and only
    then are items touched: the timeout job takes claims (SKIP LOCKED) before items too,
    so neither ever waits for a claim while holding an item.
    """
    ids = {claim_id for event in events if (claim_id := _claim_id(event)) is not None}
    if not ids:
        return
    query = (
        sa.select(catalogue_claims)
        .where(catalogue_claims.c.claim_id.in_(sorted(ids)))
        .order_by(catalogue_claims.c.claim_id)
        .with_for_update()
    )
    claims = {row.claim_id: row for row in await ctx.conn.execute(query)}
    for event in events:
        claim_id = _claim_id(event)
        if claim_id is not None and claim_id in claims:
            await _answer(ctx, delivery, event, claims[claim_id])
            claims[claim_id] = await claim_row(ctx.conn, claim_id)


def may_see_claim(key_merchant: str | None, claim: Any) -> bool:
    """A key bound to a merchant reads only the claims it could have made (its merchant's
    items and the programme's own); the others answer as unknown."""
    item_merchant = None if claim.merchant_id == HOUSE_MERCHANT else claim.merchant_id
    return may_claim_for(key_merchant, item_merchant)


async def claim_view(conn: AsyncConnection, claim: Any, now: datetime) -> dict[str, Any]:
    """A claim as partner apps see it, with its voucher once issued."""
    view: dict[str, Any] = {
        "claim_id": str(claim.claim_id),
        "item_id": claim.item_id,
        "customer_id": claim.customer_id,
        "points": claim.points,
        "state": claim.state,
        "reason": claim.reason,
        "settled": claim.state in SETTLED,
        "created_at": claim.created_at,
        "updated_at": claim.updated_at,
        "voucher": None,
    }
    if claim.voucher_id is not None:
        row = (
            await conn.execute(sa.select(vouchers).where(vouchers.c.voucher_id == claim.voucher_id))
        ).one()
        view["voucher"] = voucher_view(row, now)
    return view
