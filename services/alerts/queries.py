"""Read side of the HTTP API: the ranked alert list with cursor pagination, one alert.

The list is ordered by value at risk (highest first), then by alert id, so the order is total
and a cursor (the last row's value and id) resumes exactly after it, however many alerts tie
on value. Keyset pagination costs O(page) on the `(value_at_risk_minor DESC, alert_id)`
indexes of open alerts, never O(offset). The cursor is opaque to clients: base64 of a
versioned text, so its layout can change without breaking anyone who treats it as a token.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.db import alerts
from services.alerts.schemas import Acknowledgement, AlertOut, AlertState
from shared.errors import Unprocessable
from shared.money import format_money

_CURSOR_VERSION = "v1"
_MAX_BIGINT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last alert's value at risk and id."""

    value_at_risk_minor: int
    alert_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class AlertFilters:
    state: AlertState = AlertState.OPEN
    status: str | None = None
    kind: str | None = None
    merchant_id: str | None = None
    segment: str | None = None
    currency: str | None = None
    acknowledged: bool | None = None


def encode_cursor(position: Position) -> str:
    text = f"{_CURSOR_VERSION}:{position.value_at_risk_minor}:{position.alert_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor names; a 422 naming `cursor` when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, value, alert_id = (
            base64.urlsafe_b64decode(padded.encode("ascii")).decode().split(":")
        )
        if version != _CURSOR_VERSION or not 0 <= int(value) <= _MAX_BIGINT:
            raise ValueError(version)
        return Position(int(value), uuid.UUID(alert_id))
    except (ValueError, UnicodeError, binascii.Error) as exc:
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
        ) from exc


def _conditions(filters: AlertFilters) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = []
    if filters.state is AlertState.OPEN:
        found.append(alerts.c.closed_at.is_(None))
    elif filters.state is AlertState.CLOSED:
        found.append(alerts.c.closed_at.isnot(None))
    exact = {
        alerts.c.status: filters.status,
        alerts.c.kind: filters.kind,
        alerts.c.merchant_id: filters.merchant_id,
        alerts.c.segment: filters.segment,
        alerts.c.currency: filters.currency,
    }
    found.extend(column == value for column, value in exact.items() if value is not None)
    if filters.acknowledged is not None:
        acked = alerts.c.acknowledged_at
        found.append(acked.isnot(None) if filters.acknowledged else acked.is_(None))
    return found


async def list_alerts(
    conn: AsyncConnection, filters: AlertFilters, after: Position | None, limit: int
) -> tuple[list[Mapping[Any, Any]], Position | None]:
    """One page of alerts, most at stake first, and the position to resume from (if more)."""
    value, alert_id = alerts.c.value_at_risk_minor, alerts.c.alert_id
    query = sa.select(alerts).where(*_conditions(filters))
    if after is not None:
        query = query.where(
            sa.or_(
                value < after.value_at_risk_minor,
                sa.and_(value == after.value_at_risk_minor, alert_id > after.alert_id),
            )
        )
    query = query.order_by(value.desc(), alert_id).limit(limit + 1)
    rows: Sequence[Mapping[Any, Any]] = (await conn.execute(query)).mappings().all()
    page = list(rows[:limit])
    more = len(rows) > limit
    last = page[-1] if page else None
    position = Position(last["value_at_risk_minor"], last["alert_id"]) if more and last else None
    return page, position


async def alert_by_id(
    conn: AsyncConnection, alert_id: uuid.UUID, *, lock: bool = False
) -> Mapping[Any, Any] | None:
    query = sa.select(alerts).where(alerts.c.alert_id == alert_id)
    if lock:
        query = query.with_for_update()
    return (await conn.execute(query)).mappings().first()


def alert_out(row: Mapping[Any, Any]) -> AlertOut:
    acknowledgement = None
    if row["acknowledged_at"] is not None:
        acknowledgement = Acknowledgement(
            at=row["acknowledged_at"],
            by=row["acknowledged_by"] or "unknown",
            key_id=row["acknowledged_key_id"],
            note=row["ack_note"],
            claimed_by=row["ack_claimed_by"],
        )
    return AlertOut(
        alert_id=row["alert_id"],
        customer_id=row["customer_id"],
        kind=row["kind"],
        status=row["status"],
        rule=row["rule"],
        reason=row["reason"],
        value_at_risk=format_money(row["value_at_risk_minor"], row["currency"]),
        currency=row["currency"],
        segment=row["segment"],
        tier=row["tier"],
        merchant_id=row["merchant_id"],
        last_purchase_at=row["last_purchase_at"],
        tripped_at=row["tripped_at"],
        opened_at=row["opened_at"],
        escalated_at=row["escalated_at"],
        closed_at=row["closed_at"],
        open=row["closed_at"] is None,
        acknowledgement=acknowledgement,
    )
