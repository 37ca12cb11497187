"""Alerts (`alerts`): open, escalate, close, acknowledge, and the ranked list.

The list is ordered by value at risk (highest first), then by alert id, so the order is total
and a position (the last row's value and id) resumes exactly after it, however many alerts tie
on value. Keyset pagination costs O(page) on the `(value_at_risk_minor DESC, alert_id)`
indexes of open alerts, never O(offset).

Every method runs in the unit of work's transaction and never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.db import alerts
from services.alerts.domain.lapse import AlertStatus
from services.alerts.domain.records import LAPSE_KIND, NewAlert, OpenAlert
from shared.db import api_keys

AlertRow = Mapping[Any, Any]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last alert's value at risk and id."""

    value_at_risk_minor: int
    alert_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class AlertFilters:
    state: str = "open"  # open, closed or all
    status: str | None = None
    kind: str | None = None
    merchant_id: str | None = None
    segment: str | None = None
    currency: str | None = None
    acknowledged: bool | None = None


_OPEN_ALERTS = sa.text(
    "INSERT INTO alerts (alert_id, customer_id, kind, status, rule, reason, value_at_risk_minor,"
    " currency, segment, tier, merchant_id, last_purchase_at, tripped_at, opened_at) "
    "SELECT n.alert_id, n.customer_id, :kind, n.status, n.rule, n.reason, n.value, n.currency,"
    " n.segment, n.tier, n.merchant_id, n.last_purchase_at, n.tripped_at, :opened_at "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:customers AS text[]), CAST(:statuses AS text[]),"
    " CAST(:rules AS text[]), CAST(:reasons AS text[]), CAST(:values AS bigint[]),"
    " CAST(:currencies AS text[]), CAST(:segments AS text[]), CAST(:tiers AS text[]),"
    " CAST(:merchants AS text[]), CAST(:lasts AS timestamptz[]), CAST(:tripped AS timestamptz[]))"
    " AS n(alert_id, customer_id, status, rule, reason, value, currency, segment, tier,"
    " merchant_id, last_purchase_at, tripped_at) "
    "ORDER BY n.customer_id "
    "ON CONFLICT DO NOTHING RETURNING alert_id"
)

_CLOSE_ALERTS = sa.text(
    "UPDATE alerts AS al SET closed_at = c.at, closed_by_event_id = c.event_id "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:ats AS timestamptz[]),"
    " CAST(:events AS uuid[])) AS c(id, at, event_id) "
    "WHERE al.alert_id = c.id AND al.closed_at IS NULL"
)


class AlertRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def open_for(
        self, customer_ids: Iterable[str], kind: str = LAPSE_KIND
    ) -> dict[str, OpenAlert]:
        """The open alert of `kind` of each of these customers that has one."""
        ids = list(set(customer_ids))
        if not ids:
            return {}
        query = sa.select(
            alerts.c.alert_id, alerts.c.customer_id, alerts.c.status, alerts.c.last_purchase_at
        ).where(alerts.c.customer_id.in_(ids), alerts.c.kind == kind, alerts.c.closed_at.is_(None))
        rows = (await self.conn.execute(query)).all()
        return {
            row.customer_id: OpenAlert(
                row.alert_id, row.customer_id, AlertStatus(row.status), row.last_purchase_at
            )
            for row in rows
        }

    async def open_new(self, new: Sequence[NewAlert], opened_at: datetime) -> set[uuid.UUID]:
        """Insert alerts in one statement; returns the ids actually opened (an open one per
        customer and kind, or the same alert opened before, makes the database refuse quietly).
        """
        if not new:
            return set()
        params = {
            "kind": LAPSE_KIND,
            "opened_at": opened_at,
            "ids": [a.alert_id for a in new],
            "customers": [a.customer_id for a in new],
            "statuses": [a.status.value for a in new],
            "rules": [a.rule for a in new],
            "reasons": [a.reason for a in new],
            "values": [a.value_at_risk_minor for a in new],
            "currencies": [a.currency for a in new],
            "segments": [a.segment for a in new],
            "tiers": [a.tier for a in new],
            "merchants": [a.merchant_id for a in new],
            "lasts": [a.last_purchase_at for a in new],
            "tripped": [a.tripped_at for a in new],
        }
        return set((await self.conn.execute(_OPEN_ALERTS, params)).scalars().all())

    async def escalate(self, alert: NewAlert, escalated_at: datetime) -> bool:
        """Move an open at-risk alert to lapsed with fresh facts; False if it was not at risk."""
        result = await self.conn.execute(
            sa.update(alerts)
            .where(
                alerts.c.alert_id == alert.alert_id,
                alerts.c.status == AlertStatus.AT_RISK.value,
                alerts.c.closed_at.is_(None),
            )
            .values(
                status=alert.status.value,
                rule=alert.rule,
                reason=alert.reason,
                value_at_risk_minor=alert.value_at_risk_minor,
                segment=alert.segment,
                tier=alert.tier,
                merchant_id=alert.merchant_id,
                escalated_at=escalated_at,
            )
        )
        return result.rowcount == 1

    async def close(self, closures: Mapping[uuid.UUID, tuple[datetime, uuid.UUID]]) -> None:
        """Close alerts: alert id -> (when, the purchase event that closed it)."""
        if not closures:
            return
        await self.conn.execute(
            _CLOSE_ALERTS,
            {
                "ids": list(closures),
                "ats": [at for at, _ in closures.values()],
                "events": [event for _, event in closures.values()],
            },
        )

    async def acknowledge(
        self,
        alert_id: uuid.UUID,
        *,
        by: str,
        note: str,
        key_id: str | None,
        at: datetime,
        claimed_by: str | None = None,
    ) -> AlertRow | None:
        """Operations saw the alert. The FIRST acknowledgement is kept whole (who, when, note):
        repeating it changes nothing, so the record of who acted first cannot be rewritten.

        Returns the alert row as it stands afterwards, or None if there is no such alert.
        """
        await self.conn.execute(
            sa.update(alerts)
            .where(alerts.c.alert_id == alert_id, alerts.c.acknowledged_at.is_(None))
            .values(
                acknowledged_at=at,
                acknowledged_by=by,
                acknowledged_key_id=key_id,
                ack_note=note,
                ack_claimed_by=claimed_by,
            )
        )
        return await self.get(alert_id)

    async def get(self, alert_id: uuid.UUID, *, lock: bool = False) -> AlertRow | None:
        query = sa.select(alerts).where(alerts.c.alert_id == alert_id)
        if lock:
            query = query.with_for_update()
        return (await self.conn.execute(query)).mappings().first()

    async def page(
        self, filters: AlertFilters, after: Position | None, limit: int
    ) -> tuple[list[AlertRow], Position | None]:
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
        rows: Sequence[AlertRow] = (await self.conn.execute(query)).mappings().all()
        page = list(rows[:limit])
        last = page[-1] if page else None
        more = len(rows) > limit and last is not None
        position = (
            Position(last["value_at_risk_minor"], last["alert_id"]) if more and last else None
        )
        return page, position

    async def api_key_name(self, key_id: str) -> str | None:
        """The name an API key was created with (who holds it), for the audit record."""
        return await self.conn.scalar(sa.select(api_keys.c.name).where(api_keys.c.key_id == key_id))


def _conditions(filters: AlertFilters) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = []
    if filters.state == "open":
        found.append(alerts.c.closed_at.is_(None))
    elif filters.state == "closed":
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
