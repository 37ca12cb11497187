"""Points the points service gave back outside the catalogue saga.

The saga never cancels a redemption: it asks for `points.debit_reversal_requested`. So a
`points.redemption_cancelled` naming the redemption behind a claim's debit means the
claim's points came back while its voucher stayed valid. Every cancellation is kept here,
whatever order it arrives in, and `GET /v1/admin/invariants` joins them to the claims
(`catalogue_voucher_points_returned`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from services.rewards.db import catalogue_claims, returned_redemptions
from shared.contracts.envelope import EventEnvelope
from shared.kafka.handlers import BatchContext

log = logging.getLogger(__name__)


async def record_returned_redemptions(ctx: BatchContext, events: Sequence[EventEnvelope]) -> None:
    """Remember every redemption the points service gave back; log the ones behind a claim."""
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
    await ctx.conn.execute(pg.insert(returned_redemptions).values(rows).on_conflict_do_nothing())
    backing = await ctx.conn.execute(
        sa.select(catalogue_claims.c.claim_id, catalogue_claims.c.voucher_id).where(
            catalogue_claims.c.redemption_id.in_([r["redemption_id"] for r in rows])
        )
    )
    for claim in backing:
        log.error(
            "the points of claim %s were given back outside the saga; its voucher %s is kept",
            claim.claim_id,
            claim.voucher_id,
        )
