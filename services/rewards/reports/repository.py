"""What the reports and gauges count across the books (read only)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.domain.catalogue import ClaimState

_WAITING = sa.text(
    """
    SELECT 'compensation' AS subject, count(*) AS n FROM compensations WHERE status = 'in_review'
    UNION ALL
    SELECT 'claim', count(*) FROM guarantee_claims WHERE status = 'in_review'
    UNION ALL
    SELECT 'catalogue_claim', count(*) FROM catalogue_claims WHERE state = :requested
    """
)


# One query per invariant (`invariants.py` says what each means); each lists at most
# :limit breaking rows, `subject` first.
CHECKS: dict[str, str] = {
    "catalogue_voucher_without_issued_claim": """
        SELECT v.voucher_id::text AS subject, v.origin_ref, c.state,
               c.voucher_id::text AS claim_voucher
        FROM vouchers v
        LEFT JOIN catalogue_claims c ON 'claim:' || c.claim_id::text = v.origin_ref
        WHERE v.origin = 'catalogue'
          AND (c.claim_id IS NULL OR c.state <> 'issued' OR c.voucher_id <> v.voucher_id)
        ORDER BY v.voucher_id LIMIT :limit
    """,
    "catalogue_voucher_points_returned": """
        SELECT v.voucher_id::text AS subject, c.claim_id::text AS claim_id, c.customer_id,
               r.redemption_id, r.points AS points_returned, r.returned_at, v.redeemed_at
        FROM returned_redemptions r
        JOIN catalogue_claims c ON c.redemption_id = r.redemption_id
        JOIN vouchers v ON v.voucher_id = c.voucher_id
        WHERE v.redeemed_at IS NOT NULL OR (v.expired_at IS NULL AND v.expires_at > :now)
        ORDER BY v.voucher_id LIMIT :limit
    """,
    "claim_unsettled_after_debit": """
        SELECT claim_id::text AS subject, customer_id, state, reason, updated_at
        FROM catalogue_claims
        WHERE state IN ('points_debited', 'cancelled') AND updated_at <= :settle_by
        ORDER BY updated_at LIMIT :limit
    """,
    "stock_count_mismatch": """
        SELECT i.item_id AS subject, i.units_claimed, i.total_stock,
               count(c.claim_id) AS holding
        FROM catalogue_items i
        LEFT JOIN catalogue_claims c ON c.item_id = i.item_id
            AND c.state IN ('requested', 'points_debited', 'issued')
        GROUP BY i.item_id
        HAVING i.units_claimed <> count(c.claim_id) OR i.units_claimed < 0
            OR i.units_claimed > coalesce(i.total_stock, i.units_claimed)
        ORDER BY i.item_id LIMIT :limit
    """,
    "breach_total_mismatch": """
        SELECT b.breach_key AS subject, b.refund_minor, b.points,
               coalesce(sum(c.refund_minor), 0) AS compensated_refund_minor,
               coalesce(sum(c.points), 0) AS compensated_points
        FROM breaches b LEFT JOIN compensations c ON c.breach_key = b.breach_key
        GROUP BY b.breach_key
        HAVING b.refund_minor <> coalesce(sum(c.refund_minor), 0)
            OR b.points <> coalesce(sum(c.points), 0)
        ORDER BY b.breach_key LIMIT :limit
    """,
    "compensation_off_record": """
        SELECT b.breach_key AS subject, b.order_id, b.customer_id, b.merchant_id,
               b.order_amount_minor, o.customer_id AS recorded_customer_id,
               o.merchant_id AS recorded_merchant_id, o.amount_minor AS recorded_amount_minor
        FROM breaches b LEFT JOIN orders o ON o.order_id = b.order_id
        WHERE o.order_id IS NULL OR o.customer_id <> b.customer_id
            OR o.merchant_id <> b.merchant_id OR b.order_amount_minor > o.amount_minor
        ORDER BY b.breach_key LIMIT :limit
    """,
    "voucher_redeemed_invalidly": """
        SELECT voucher_id::text AS subject, merchant_id, redeemed_by, redeemed_at, expires_at,
               expired_at
        FROM vouchers
        WHERE redeemed_at IS NOT NULL AND (
            redeemed_at >= expires_at OR expired_at IS NOT NULL
            OR (merchant_id IS NOT NULL AND redeemed_by <> merchant_id))
        ORDER BY voucher_id LIMIT :limit
    """,
}

_PAID_PER_BREACH = sa.text(
    """
    SELECT b.breach_key, b.order_amount_minor, p.merchant_id, p.promise_kind, p.unit, p.tiers,
           p.claim_window_days, sum(c.refund_minor) AS paid
    FROM breaches b
    JOIN compensations c ON c.breach_key = b.breach_key AND c.status = 'granted'
    JOIN guarantee_policies p ON p.merchant_id = b.merchant_id
        AND p.promise_kind = b.promise_kind
    GROUP BY b.breach_key, p.merchant_id, p.promise_kind
    HAVING sum(c.refund_minor) > 0
    ORDER BY b.breach_key
    """
)


class ReportRepository:
    """Counts over the books."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def waiting_counts(self) -> dict[str, int]:
        """Held compensations, undecided guarantee claims, and catalogue claims waiting for
        the points service (each through a partial index on the waiting rows)."""
        rows = await self.conn.execute(_WAITING, {"requested": ClaimState.REQUESTED.value})
        return {row.subject: int(row.n) for row in rows}

    async def breaking_rows(self, check: str, params: dict[str, Any]) -> list[Any]:
        """The rows breaking the invariant `check` (one of `CHECKS`)."""
        return list((await self.conn.execute(sa.text(CHECKS[check]), params)).all())

    async def paid_per_breach(self) -> list[Any]:
        """Money granted per breach that paid any, with its merchant's policy."""
        return list((await self.conn.execute(_PAID_PER_BREACH)).all())
