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

from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.domain.guarantee import GuaranteePolicy, Measurement, evaluate
from services.rewards.policies.service import policy_from_document
from services.rewards.reports.repository import CHECKS, ReportRepository

UNSETTLED_AFTER = timedelta(days=1)


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


async def _paid_above_top_tier(books: ReportRepository, limit: int) -> list[Violation]:
    found = []
    for row in await books.paid_per_breach():
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
    books = ReportRepository(conn)
    found: list[Violation] = []
    for name in CHECKS:
        found.extend(_violation(name, row) for row in await books.breaking_rows(name, params))
    found.extend(await _paid_above_top_tier(books, limit))
    return found


def invariant_names() -> list[str]:
    return [*CHECKS, "paid_above_top_tier"]
