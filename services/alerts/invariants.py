"""Invariants of the alerts database, checked on demand (`GET /v1/admin/invariants`, and
`loyalty invariants` straight on the database when the service is down).

1. `duplicate_open_alert`: at most one open alert per customer and kind.
2. `alert_without_customer`: every open alert's customer has a `customer_activity` row.
3. `counts_out_of_range`: purchase, visit, late-purchase and gap counts and spend are never
   negative, and visits never exceed purchases.
4. `next_check_missing`: every customer who has bought and has no open lapsed alert has a
   next lapse check; without one the scanner (which works by due time) never looks again.

The database enforces 1 and 3 itself (a partial unique index, a CHECK constraint); they are
checked anyway because the report must hold even if a constraint was dropped or a restore
skipped it. Each check is one set-based query over a range of customer ids, so a page of
customers costs a few index range scans; pages are ranges `(after, upto]`, the last one
unbounded, so an open alert whose customer is missing is still found on the page its id
falls in.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.db import alerts, customer_activity
from services.alerts.domain.lapse import AlertStatus
from shared.errors import Unprocessable

ViolationKind = Literal[
    "duplicate_open_alert", "alert_without_customer", "counts_out_of_range", "next_check_missing"
]

_CURSOR_PREFIX = "inv1:"


@dataclass(frozen=True, slots=True)
class Violation:
    customer_id: str
    kind: ViolationKind
    detail: str


@dataclass(frozen=True, slots=True)
class CustomerRange:
    """Customer ids in `(after, upto]`; a missing bound is open."""

    after: str | None = None
    upto: str | None = None

    def holds(self, column: sa.ColumnElement[str]) -> list[sa.ColumnElement[bool]]:
        bounds = []
        if self.after is not None:
            bounds.append(column > self.after)
        if self.upto is not None:
            bounds.append(column <= self.upto)
        return bounds


@dataclass(frozen=True, slots=True)
class InvariantPage:
    checked_customers: int
    violations: list[Violation]
    next_after: str | None  # where the next page starts; None on the last page


def encode_invariants_cursor(after: str) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{after}".encode()).decode().rstrip("=")


def decode_invariants_cursor(cursor: str) -> str:
    """The customer id a cursor resumes after; a 422 naming `cursor` when it is not ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeError, binascii.Error):
        text = ""
    if not text.startswith(_CURSOR_PREFIX) or len(text) == len(_CURSOR_PREFIX):
        raise Unprocessable(
            "cursor is not a cursor this API returned",
            code="validation_failed",
            errors=[
                {
                    "field": "query.cursor",
                    "rule": "cursor_invalid",
                    "message": "pass next_cursor from a previous page unchanged",
                }
            ],
        )
    return text.removeprefix(_CURSOR_PREFIX)


async def check_invariants_page(
    conn: AsyncConnection, after: str | None, limit: int | None
) -> InvariantPage:
    """Check the next `limit` customers after `after` (every customer when `limit` is None)."""
    in_range = CustomerRange(after).holds(customer_activity.c.customer_id)
    if limit is None:
        counted = sa.select(sa.func.count()).select_from(customer_activity).where(*in_range)
        checked = int(await conn.scalar(counted) or 0)
        return InvariantPage(checked, await violations_in(conn, CustomerRange(after)), None)
    ids_query = (
        sa.select(customer_activity.c.customer_id)
        .where(*in_range)
        .order_by(customer_activity.c.customer_id)
        .limit(limit + 1)
    )
    ids: Sequence[str] = (await conn.execute(ids_query)).scalars().all()
    upto = ids[limit - 1] if len(ids) > limit else None
    found = await violations_in(conn, CustomerRange(after, upto))
    return InvariantPage(min(len(ids), limit), found, upto)


async def invariant_violations(conn: AsyncConnection) -> list[Violation]:
    """Every violation in the database (the direct check of `loyalty invariants`)."""
    return await violations_in(conn, CustomerRange())


async def violations_in(conn: AsyncConnection, customers: CustomerRange) -> list[Violation]:
    found = [
        *await _duplicate_open_alerts(conn, customers),
        *await _alerts_without_customer(conn, customers),
        *await _counts_out_of_range(conn, customers),
        *await _next_checks_missing(conn, customers),
    ]
    return sorted(found, key=lambda v: (v.customer_id, v.kind))


def _open_alerts(customers: CustomerRange) -> list[sa.ColumnElement[bool]]:
    return [alerts.c.closed_at.is_(None), *customers.holds(alerts.c.customer_id)]


async def _duplicate_open_alerts(
    conn: AsyncConnection, customers: CustomerRange
) -> list[Violation]:
    alert_ids = sa.func.array_agg(aggregate_order_by(alerts.c.alert_id, alerts.c.alert_id))
    query = (
        sa.select(alerts.c.customer_id, alerts.c.kind, alert_ids)
        .where(*_open_alerts(customers))
        .group_by(alerts.c.customer_id, alerts.c.kind)
        .having(sa.func.count() > 1)
    )
    found = []
    for customer, kind, ids in (await conn.execute(query)).all():
        listed = ", ".join(str(alert_id) for alert_id in ids)
        found.append(
            Violation(customer, "duplicate_open_alert", f"{len(ids)} open {kind} alerts: {listed}")
        )
    return found


async def _alerts_without_customer(
    conn: AsyncConnection, customers: CustomerRange
) -> list[Violation]:
    known = sa.exists().where(customer_activity.c.customer_id == alerts.c.customer_id)
    query = sa.select(alerts.c.customer_id, alerts.c.alert_id).where(
        *_open_alerts(customers), ~known
    )
    return [
        Violation(customer, "alert_without_customer", f"open alert {alert_id} has no activity")
        for customer, alert_id in (await conn.execute(query)).all()
    ]


_COUNTED = ("purchase_count", "visit_count", "late_purchase_count", "gap_count", "spend_minor")


async def _counts_out_of_range(conn: AsyncConnection, customers: CustomerRange) -> list[Violation]:
    columns = [customer_activity.c[name] for name in _COUNTED]
    out_of_range = sa.or_(
        *(column < 0 for column in columns),
        customer_activity.c.visit_count > customer_activity.c.purchase_count,
    )
    query = sa.select(customer_activity.c.customer_id, *columns).where(
        out_of_range, *customers.holds(customer_activity.c.customer_id)
    )
    return [
        Violation(
            row.customer_id,
            "counts_out_of_range",
            ", ".join(f"{name}={getattr(row, name)}" for name in _COUNTED),
        )
        for row in (await conn.execute(query)).all()
    ]


async def _next_checks_missing(conn: AsyncConnection, customers: CustomerRange) -> list[Violation]:
    lapsed = sa.exists().where(
        alerts.c.customer_id == customer_activity.c.customer_id,
        alerts.c.closed_at.is_(None),
        alerts.c.status == AlertStatus.LAPSED.value,
    )
    query = sa.select(customer_activity.c.customer_id, customer_activity.c.last_purchase_at).where(
        customer_activity.c.last_purchase_at.isnot(None),
        customer_activity.c.next_check_at.is_(None),
        ~lapsed,
        *customers.holds(customer_activity.c.customer_id),
    )
    return [
        Violation(
            customer,
            "next_check_missing",
            f"last purchase {last.isoformat()}, no open lapsed alert, no next lapse check",
        )
        for customer, last in (await conn.execute(query)).all()
    ]
