"""What must always hold in the rewards books, checked behind `GET /v1/admin/invariants`.

The database already refuses most broken states (unique keys, CHECKs, foreign keys; see
`db.py`). These checks cover what spans rows or tables, and so cannot be a constraint:

- `catalogue_voucher_without_issued_claim`: a catalogue voucher whose claim is not
  `issued` with that very voucher (a cancelled claim with a voucher would mean the points
  were returned and the voucher kept);
- `catalogue_voucher_points_returned`: a catalogue voucher, still redeemable or already
  redeemed, whose claim's debit the points service gave back outside the saga
  (`points.redemption_cancelled` for the debit's redemption): the voucher was paid for
  with points the customer has again;
- `claim_unsettled_after_debit`: a claim still `points_debited`, or `cancelled` without the
  points service confirming the return, a day after its last change (points may be spent
  with neither a voucher nor a reversal);
- `stock_count_mismatch`: `units_claimed` differs from the claims holding a unit, or is
  outside 0..total_stock;
- `breach_total_mismatch`: a breach's running totals differ from its compensations;
- `paid_above_top_tier`: an (order, promise) was paid more money than the policy's top
  tier pays on that order;
- `compensation_off_record`: a breach compensated on an order rewards never recorded from
  `pos.purchases`, of another customer or merchant than the record, or on more than the
  recorded amount;
- `voucher_redeemed_invalidly`: redeemed after it expired, at a merchant it is not bound
  to, or both redeemed and expired.

Each check lists at most `limit` breaking rows; the report says when it was cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.domain.guarantee import GuaranteePolicy, Measurement, evaluate
from services.rewards.policies.service import policy_from_document

UNSETTLED_AFTER = timedelta(days=1)

_CHECKS: dict[str, str] = {
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


@dataclass(frozen=True)
class Violation:
    """One row that breaks one invariant."""

    invariant: str
    subject: str
    detail: dict[str, Any]


def top_tier_refund(policy: GuaranteePolicy, order_amount_minor: int) -> int:
    """The most money the policy ever pays on an order: what its top tier pays."""
    if policy.unit.seconds_each is None:
        beyond_every_tier = Measurement.breach(True)
    else:
        beyond_every_tier = Measurement(max(t.over for t in policy.tiers) + 1, policy.unit)
    return evaluate(policy, beyond_every_tier, order_amount_minor).refund_minor


def _violation(name: str, row: Any) -> Violation:
    detail = {k: v for k, v in row._mapping.items() if k != "subject"}
    return Violation(name, str(row.subject), detail)


async def _paid_above_top_tier(conn: AsyncConnection, limit: int) -> list[Violation]:
    found = []
    for row in await conn.execute(_PAID_PER_BREACH):
        policy = policy_from_document(
            row.merchant_id, row.promise_kind, row.unit, row.tiers, row.claim_window_days
        )
        most = top_tier_refund(policy, row.order_amount_minor)
        if row.paid > most:
            detail = {"paid_minor": int(row.paid), "top_tier_minor": most}
            found.append(Violation("paid_above_top_tier", row.breach_key, detail))
            if len(found) >= limit:
                break
    return found


async def invariant_violations(
    conn: AsyncConnection, now: datetime | None = None, limit: int = 100
) -> list[Violation]:
    """Every breaking row, at most `limit` per invariant (empty when the books are sound)."""
    now = now or datetime.now().astimezone()
    params = {"limit": limit, "settle_by": now - UNSETTLED_AFTER, "now": now}
    found: list[Violation] = []
    for name, sql in _CHECKS.items():
        rows = await conn.execute(sa.text(sql), params)
        found.extend(_violation(name, row) for row in rows)
    found.extend(await _paid_above_top_tier(conn, limit))
    return found


def invariant_names() -> list[str]:
    return [*_CHECKS, "paid_above_top_tier"]
