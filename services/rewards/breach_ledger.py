"""What a `BreachBook` reads and writes besides breaches: cap usage and held parts.

Split from `breach_book` so the judging stays readable: these are the statements that load
the customers' grants in their 30-day windows, the merchants' monthly spend, the held
self-reported parts of a batch's breaches (locked), and store the parts an incident
confirmed (and the claims they settle).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import breaches, compensations, guarantee_claims
from services.rewards.domain.guarantee import owed_at_tier
from services.rewards.domain.guarantee_limits import (
    CUSTOMER_CAP_WINDOW,
    budget_month,
    customer_window_start,
)
from services.rewards.orders import recorded_orders
from services.rewards.policies import load_policy, promise_kind

if TYPE_CHECKING:
    from services.rewards.breach_book import BreachReport

SELF_REPORTED = "self_reported"


@dataclass(frozen=True)
class _Granted:
    """A granted compensation, as the customer caps count it."""

    decided_at: datetime
    money_minor: int  # refund plus voucher value
    breach_key: str
    points: int = 0


async def load_customer_grants(
    conn: AsyncConnection, reports: Sequence[BreachReport]
) -> dict[str, list[_Granted]]:
    """Granted compensations of the reports' customers in the windows their times open."""
    start = customer_window_start(min(r.at for r in reports))
    end = max(r.at for r in reports) + CUSTOMER_CAP_WINDOW
    granted = compensations.c
    rows = await conn.execute(
        sa.select(
            granted.customer_id,
            granted.decided_at,
            granted.refund_minor + granted.voucher_value_minor,
            granted.breach_key,
            granted.points,
        ).where(
            granted.customer_id.in_(sorted({r.customer_id for r in reports})),
            granted.status == "granted",
            granted.decided_at > start,
            granted.decided_at < end,
        )
    )
    found: dict[str, list[_Granted]] = defaultdict(list)
    for row in rows:
        found[row[0]].append(_Granted(row[1], int(row[2]), row[3], int(row[4])))
    return dict(found)


_MONTH = sa.func.date_trunc("month", sa.func.timezone("UTC", compensations.c.decided_at))


async def load_merchant_months(
    conn: AsyncConnection, reports: Sequence[BreachReport]
) -> dict[tuple[str, datetime], tuple[int, int]]:
    """Money and points each merchant granted in each budget month (UTC) the reports fall in."""
    start = budget_month(min(r.at for r in reports))[0]
    end = budget_month(max(r.at for r in reports))[1]
    granted = compensations.c
    rows = await conn.execute(
        sa.select(
            granted.merchant_id,
            _MONTH.label("month"),
            sa.func.sum(granted.refund_minor + granted.voucher_value_minor),
            sa.func.sum(granted.points),
        )
        .where(
            granted.merchant_id.in_(sorted({r.merchant_id for r in reports})),
            granted.status == "granted",
            granted.decided_at >= start,
            granted.decided_at < end,
        )
        .group_by(granted.merchant_id, _MONTH)
    )
    return {(row[0], row[1].replace(tzinfo=UTC)): (int(row[2]), int(row[3])) for row in rows}


async def held_self_reported(
    conn: AsyncConnection, keys: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Held parts of customers' own reports on these breaches (their rows are locked)."""
    if not keys:
        return {}
    rows = await conn.execute(
        sa.select(compensations)
        .where(
            compensations.c.breach_key.in_(keys),
            compensations.c.status == "in_review",
            sa.literal(SELF_REPORTED) == sa.any_(compensations.c.review_reasons),
        )
        .order_by(compensations.c.breach_key, compensations.c.tier)
        .with_for_update()
    )
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        found[row.breach_key].append(dict(row._mapping))
    return dict(found)


async def write_confirmed(
    conn: AsyncConnection, confirmed: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Store held rows an incident confirmed (paid on the order as it then was); granted ones
    are returned for delivery."""
    for row in confirmed:
        await conn.execute(
            sa.update(compensations)
            .where(compensations.c.compensation_id == row["compensation_id"])
            .values(
                status=row["status"],
                review_reasons=row["review_reasons"],
                refund_minor=row["refund_minor"],
                points=row["points"],
                decided_at=row["decided_at"],
                decided_by=row["decided_by"],
            )
        )
    granted = [row for row in confirmed if row["status"] == "granted"]
    if granted:
        await conn.execute(
            sa.update(guarantee_claims)
            .where(
                guarantee_claims.c.compensation_id.in_([r["compensation_id"] for r in granted]),
                guarantee_claims.c.status == "in_review",
            )
            .values(
                status="granted",
                decided_at=granted[0]["decided_at"],
                explanation="confirmed by an incident measured by operations",
            )
        )
    return granted


async def refund_on_record(conn: AsyncConnection, row: Any) -> int:
    """The refund a held compensation may pay now: the breach in all never pays more than
    its highest granted tier earns on the order as recorded today (after returns).

    A held part was computed on the order when it was judged; a return since then lowers
    it, so approving from the review queue pays what the record supports, never more.
    Without the policy or the order record the stored amount stands.
    """
    kind = promise_kind(row.promise_kind)
    policy = await load_policy(conn, row.merchant_id, kind) if kind else None
    order = (await recorded_orders(conn, [row.order_id])).get(row.order_id)
    if policy is None or order is None or not row.refund_minor:
        return int(row.refund_minor)
    paid, top = (
        await conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(compensations.c.refund_minor), 0),
                sa.func.coalesce(sa.func.max(compensations.c.tier), 0),
            ).where(
                compensations.c.breach_key == row.breach_key,
                compensations.c.status == "granted",
                compensations.c.compensation_id != row.compensation_id,
            )
        )
    ).one()
    # The breach in all may pay what its highest granted tier earns on the order today.
    tier = max(int(row.tier), int(top))
    ceiling = owed_at_tier(policy, tier, order.net_amount_minor).refund_minor
    return min(int(row.refund_minor), max(0, ceiling - int(paid)))


async def lower_refund(conn: AsyncConnection, row: Any, refund_minor: int) -> None:
    """Store a held compensation's lowered refund, and its breach's total with it."""
    cut = int(row.refund_minor) - refund_minor
    if cut <= 0:
        return
    await conn.execute(
        sa.update(compensations)
        .where(compensations.c.compensation_id == row.compensation_id)
        .values(refund_minor=refund_minor)
    )
    await conn.execute(
        sa.update(breaches)
        .where(breaches.c.breach_key == row.breach_key)
        .values(refund_minor=breaches.c.refund_minor - cut)
    )
