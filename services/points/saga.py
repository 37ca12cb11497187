"""The points side of the rewards catalogue saga (requests arrive on `loyalty.rewards`).

`points.debit_requested` -> spend available points (soonest-expiring lots first) and
answer `points.debited`, or answer `points.debit_rejected` and take nothing.
`points.debit_reversal_requested` -> give a debit's points back to the very lots they
came from and answer `points.debit_reversed`; for a debit never made (rejected, or its
request never arrived) answer `points.debit_rejected` with reason `not_debited`.

Each debit is a row of `redemptions` under the idempotency key `saga:<debit_id>` (a prefix
partner apps may not use) with `claim_id` set, so no partner route can give it back while
the claim's voucher stays valid: only `points.debit_reversal_requested` does. It is written
in the consumer's transaction together with the ledger line and the answer in the
outbox: a debit is applied at most once however often its request arrives, and its
answer leaves exactly when the debit commits. Answers carry ids derived from the debit,
so a re-sent answer is deduplicated by rewards.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from services.points import commands
from services.points.book import Account, Changes
from services.points.db import lots, redemptions
from services.points.domain.errors import InsufficientPointsError
from services.points.domain.lots import LotDraw
from services.points.events import SOURCE, snapshot
from services.points.repository import lock_accounts, lot_from_row
from services.points.writes import save_changes
from shared.contracts.envelope import derived_event_id
from shared.contracts.points import (
    PointsDebited,
    PointsDebitedData,
    PointsDebitRejected,
    PointsDebitRejectedData,
    PointsDebitReversed,
    PointsDebitReversedData,
)
from shared.contracts.rewards import PointsDebitRequested, PointsDebitReversalRequested
from shared.kafka.handlers import BatchContext

log = logging.getLogger(__name__)


def saga_key(debit_id: str) -> str:
    """The redemption idempotency key of a saga debit."""
    return f"saga:{debit_id}"


def _envelope(debit_id: str, purpose: str, customer_id: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": derived_event_id(f"debit:{debit_id}", purpose),
        "version": 1,
        "occurred_at": at,
        "source": SOURCE,
        "customer_id": customer_id,
    }


def _fingerprint(event: PointsDebitRequested) -> bytes:
    body = [event.customer_id, event.data.points, event.data.merchant_id, event.data.reference]
    return hashlib.sha256(orjson.dumps(body)).digest()[:16]


async def _stored_debit(ctx: BatchContext, customer_id: str, debit_id: str) -> Any:
    query = sa.select(redemptions).where(
        redemptions.c.customer_id == customer_id,
        redemptions.c.idempotency_key == saga_key(debit_id),
    )
    return (await ctx.conn.execute(query)).first()


async def apply_debit_requests(
    ctx: BatchContext, events: Sequence[PointsDebitRequested], points_topic: str
) -> None:
    """Spend the points of each request once, or reject it; answer on `points_topic`."""
    accounts = await lock_accounts(ctx.conn, (e.customer_id for e in events))
    for event in events:
        account = accounts[event.customer_id]
        if await _stored_debit(ctx, event.customer_id, event.data.debit_id) is not None:
            log.info("debit %s already applied; request is a no-op", event.data.debit_id)
            continue
        now = max(ctx.now, event.occurred_at)
        ctx.outbox.emit(points_topic, await _debit(ctx, account, accounts, event, now))


async def _debit(
    ctx: BatchContext,
    account: Account,
    accounts: dict[str, Account],
    event: PointsDebitRequested,
    now: datetime,
) -> PointsDebited | PointsDebitRejected:
    data = event.data
    redemption_id = derived_event_id(f"redemption:{event.customer_id}", saga_key(data.debit_id))
    changes = Changes()
    request = commands.Redemption(str(redemption_id), data.points, data.merchant_id, data.reference)
    envelope = _envelope(data.debit_id, "answer", event.customer_id, now)
    try:
        draws, _ = commands.redeem(account, request, now, changes)
    except InsufficientPointsError as error:
        reason = PointsDebitRejectedData(
            **snapshot(account, now), debit_id=data.debit_id, points=data.points, reason=error.code
        )
        return PointsDebitRejected(type="points.debit_rejected", data=reason, **envelope)
    await save_changes(ctx.conn, accounts, changes)
    await ctx.conn.execute(
        sa.insert(redemptions).values(
            redemption_id=redemption_id,
            customer_id=event.customer_id,
            idempotency_key=saga_key(data.debit_id),
            request_fingerprint=_fingerprint(event),
            points=data.points,
            merchant_id=data.merchant_id,
            reference=data.reference,
            draws=[{"lot_id": d.lot_id, "points": d.points} for d in draws],
            claim_id=data.debit_id,
            occurred_at=now,
            cancelled_at=None,
        )
    )
    debited = PointsDebitedData(
        **snapshot(account, now),
        debit_id=data.debit_id,
        redemption_id=str(redemption_id),
        merchant_id=data.merchant_id,
        points=data.points,
    )
    return PointsDebited(type="points.debited", data=debited, **envelope)


async def apply_reversal_requests(
    ctx: BatchContext, events: Sequence[PointsDebitReversalRequested], points_topic: str
) -> None:
    """Give back each debit once; a reversal of a debit never made gives nothing back."""
    accounts = await lock_accounts(ctx.conn, (e.customer_id for e in events))
    for event in events:
        stored = await _stored_debit(ctx, event.customer_id, event.data.debit_id)
        account = accounts[event.customer_id]
        now = max(ctx.now, event.occurred_at)
        if stored is None:
            # Rejected, or never received (lost, dead-lettered): nothing was spent. Say so,
            # or the claim that asked would wait for an answer forever.
            ctx.outbox.emit(points_topic, _not_debited(account, event, now))
            continue
        if stored.cancelled_at is not None:
            log.info("debit %s: already given back", event.data.debit_id)
            continue
        draws = tuple(LotDraw(d["lot_id"], d["points"]) for d in stored.draws)
        await _attach_lots(ctx, account, {d.lot_id for d in draws})
        request = commands.Redemption(
            str(stored.redemption_id), stored.points, stored.merchant_id, stored.reference
        )
        changes = Changes()
        commands.cancel(account, request, draws, now, changes)
        await save_changes(ctx.conn, accounts, changes)
        await ctx.conn.execute(
            sa.update(redemptions)
            .where(redemptions.c.redemption_id == stored.redemption_id)
            .values(cancelled_at=now)
        )
        data = PointsDebitReversedData(
            **snapshot(account, now),
            debit_id=event.data.debit_id,
            redemption_id=str(stored.redemption_id),
            points=stored.points,
        )
        envelope = _envelope(event.data.debit_id, "reversed", event.customer_id, now)
        ctx.outbox.emit(
            points_topic, PointsDebitReversed(type="points.debit_reversed", data=data, **envelope)
        )


def _not_debited(
    account: Account, event: PointsDebitReversalRequested, now: datetime
) -> PointsDebitRejected:
    """The answer to a reversal of a debit never made: nothing spent, nothing to give back.

    Its id differs from the debit's own answer, so a debit rejected earlier (whose
    answer already went out with other balances) is not contradicted under the same id."""
    data = PointsDebitRejectedData(
        **snapshot(account, now), debit_id=event.data.debit_id, reason="not_debited"
    )
    envelope = _envelope(event.data.debit_id, "not_debited", event.customer_id, now)
    return PointsDebitRejected(type="points.debit_rejected", data=data, **envelope)


async def _attach_lots(ctx: BatchContext, account: Account, lot_ids: set[str]) -> None:
    """Lots a reversal gives back to that are empty now (not among the live lots)."""
    missing = lot_ids - {lot.lot_id for lot in account.lots}
    if missing:
        rows = await ctx.conn.execute(
            sa.select(lots).where(lots.c.lot_id.in_([uuid.UUID(i) for i in missing]))
        )
        account.lots = (*account.lots, *(lot_from_row(r) for r in rows))
