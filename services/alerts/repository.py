"""Queries of the alerts database. Every function runs in the caller's transaction and never
commits: one transaction per consumed batch, per scan batch, per HTTP request."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.db import (
    alert_thresholds,
    alerts,
    customer_activity,
    event_clock,
    model_parameters,
    purchase_history,
)
from services.alerts.domain.bgnbd import BgNbdParams
from services.alerts.domain.lapse import AlertStatus
from services.alerts.records import (
    LAPSE_KIND,
    CustomerActivity,
    OpenAlert,
    StoredModel,
    activity_from_row,
    activity_to_row,
    model_from_row,
)
from services.alerts.thresholds import ThresholdBook, ThresholdOverrides, ThresholdScope
from shared.db import api_keys

log = logging.getLogger(__name__)

POS_CLOCK = "pos"  # the event clock fed by pos.purchases


# --- customer activity -------------------------------------------------------------------


async def lock_activities(
    conn: AsyncConnection, customer_ids: Iterable[str]
) -> dict[str, CustomerActivity]:
    """The stored activity of these customers, row-locked (in id order, so never deadlocking)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    query = (
        sa.select(customer_activity)
        .where(customer_activity.c.customer_id.in_(ids))
        .order_by(customer_activity.c.customer_id)
        .with_for_update()
    )
    rows = (await conn.execute(query)).mappings().all()
    return {row["customer_id"]: activity_from_row(row) for row in rows}


async def save_activities(conn: AsyncConnection, activities: Iterable[CustomerActivity]) -> None:
    rows = [activity_to_row(a) for a in activities]
    if not rows:
        return
    statement = pg_insert(customer_activity)
    updated: dict[str, Any] = {
        name: statement.excluded[name] for name in rows[0] if name != "customer_id"
    }
    updated["updated_at"] = sa.func.now()
    await conn.execute(
        statement.on_conflict_do_update(index_elements=["customer_id"], set_=updated), rows
    )


async def activity_of(conn: AsyncConnection, customer_id: str) -> CustomerActivity | None:
    """One customer's activity, unlocked (for reading, e.g. over HTTP)."""
    query = sa.select(customer_activity).where(customer_activity.c.customer_id == customer_id)
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else activity_from_row(row)


async def claim_due_lapse_checks(
    conn: AsyncConnection, now: datetime, limit: int
) -> list[CustomerActivity]:
    """Customers whose lapse verdict may have changed by `now`, oldest due first.

    A range scan of the partial index on `next_check_at`: the cost follows the number due,
    never the number of customers. SKIP LOCKED lets several scanners (and the consumer)
    work side by side, each on rows nobody else holds.
    """
    column = customer_activity.c.next_check_at
    return await _claim(conn, column, now, limit)


async def claim_due_follow_ups(
    conn: AsyncConnection, now: datetime, limit: int
) -> list[CustomerActivity]:
    return await _claim(conn, customer_activity.c.follow_up_due_at, now, limit)


async def _claim(
    conn: AsyncConnection, due: sa.Column[Any], now: datetime, limit: int
) -> list[CustomerActivity]:
    query = (
        sa.select(customer_activity)
        .where(due <= now)
        .order_by(due)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [activity_from_row(row) for row in (await conn.execute(query)).mappings().all()]


_SET_DUE = (
    "UPDATE customer_activity AS ca SET {column} = d.due, updated_at = now() "
    "FROM unnest(CAST(:ids AS text[]), CAST(:dues AS timestamptz[])) AS d(id, due) "
    "WHERE ca.customer_id = d.id"
)
_SET_NEXT_CHECKS = sa.text(_SET_DUE.format(column="next_check_at"))
_SET_FOLLOW_UPS_DUE = sa.text(_SET_DUE.format(column="follow_up_due_at"))


async def set_next_checks(conn: AsyncConnection, due: Mapping[str, datetime | None]) -> None:
    if due:
        await conn.execute(_SET_NEXT_CHECKS, {"ids": list(due), "dues": list(due.values())})


async def set_follow_ups_due(conn: AsyncConnection, due: Mapping[str, datetime | None]) -> None:
    if due:
        await conn.execute(_SET_FOLLOW_UPS_DUE, {"ids": list(due), "dues": list(due.values())})


async def mark_follow_ups_raised(
    conn: AsyncConnection, customer_ids: Sequence[str], raised_at: datetime
) -> None:
    if not customer_ids:
        return
    await conn.execute(
        sa.update(customer_activity)
        .where(customer_activity.c.customer_id.in_(customer_ids))
        .values(follow_up_due_at=None, follow_up_raised_at=raised_at, updated_at=sa.func.now())
    )


@dataclass(frozen=True, slots=True)
class TierSighting:
    """A customer's tier as a points event reported it at `seen_at`."""

    customer_id: str
    tier: str
    seen_at: datetime


_RECORD_TIERS = sa.text(
    "INSERT INTO customer_activity AS ca (customer_id, tier, tier_changed_at) "
    "SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:tiers AS text[]),"
    " CAST(:ats AS timestamptz[])) "
    "ON CONFLICT (customer_id) DO UPDATE SET tier = excluded.tier,"
    " tier_changed_at = excluded.tier_changed_at, updated_at = now() "
    "WHERE ca.tier IS DISTINCT FROM excluded.tier"
    " AND (ca.tier_changed_at IS NULL OR ca.tier_changed_at <= excluded.tier_changed_at)"
)


async def record_tiers(conn: AsyncConnection, sightings: Iterable[TierSighting]) -> None:
    """Remember each customer's tier; an older sighting never overwrites a newer tier.

    `tier_changed_at` is when the stored tier was first seen (a `tier.changed` event, or the
    first snapshot that showed it), so a late snapshot of the previous tier loses. One
    sighting per customer (the caller keeps the latest), in id order so writers lock alike.
    """
    chosen = sorted(sightings, key=lambda s: s.customer_id)
    if not chosen:
        return
    await conn.execute(
        _RECORD_TIERS,
        {
            "ids": [s.customer_id for s in chosen],
            "tiers": [s.tier for s in chosen],
            "ats": [s.seen_at for s in chosen],
        },
    )


# --- purchase history --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PastPurchase:
    customer_id: str
    event_id: uuid.UUID
    purchased_at: datetime
    merchant_id: str
    amount_minor: int


_RECORD_PURCHASES = sa.text(
    "INSERT INTO purchase_history (customer_id, event_id, purchased_at, merchant_id,"
    " amount_minor) SELECT * FROM unnest(CAST(:customers AS text[]), CAST(:events AS uuid[]),"
    " CAST(:ats AS timestamptz[]), CAST(:merchants AS text[]), CAST(:amounts AS bigint[]))"
    " ON CONFLICT DO NOTHING"
)


async def record_purchase_history(conn: AsyncConnection, purchases: Sequence[PastPurchase]) -> None:
    """Keep every purchase (one statement per batch); a repeated event id changes nothing."""
    if not purchases:
        return
    await conn.execute(
        _RECORD_PURCHASES,
        {
            "customers": [p.customer_id for p in purchases],
            "events": [p.event_id for p in purchases],
            "ats": [p.purchased_at for p in purchases],
            "merchants": [p.merchant_id for p in purchases],
            "amounts": [p.amount_minor for p in purchases],
        },
    )


async def purchase_times(
    conn: AsyncConnection, customer_ids: Iterable[str]
) -> dict[str, list[datetime]]:
    """Every recorded purchase time of these customers."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    query = sa.select(purchase_history.c.customer_id, purchase_history.c.purchased_at).where(
        purchase_history.c.customer_id.in_(ids)
    )
    times: dict[str, list[datetime]] = {c: [] for c in ids}
    for row in (await conn.execute(query)).all():
        times[row.customer_id].append(row.purchased_at)
    return times


async def purchases_until(
    conn: AsyncConnection, until: datetime, merchant_id: str | None = None
) -> list[PastPurchase]:
    """Every recorded purchase up to `until` (of the customers who ever bought at the merchant,
    if one is named: their home merchant is decided from all their purchases)."""
    query = sa.select(purchase_history).where(purchase_history.c.purchased_at <= until)
    if merchant_id is not None:
        buyers = sa.select(purchase_history.c.customer_id).where(
            purchase_history.c.merchant_id == merchant_id
        )
        query = query.where(purchase_history.c.customer_id.in_(buyers))
    rows = (await conn.execute(query)).all()
    return [
        PastPurchase(r.customer_id, r.event_id, r.purchased_at, r.merchant_id, r.amount_minor)
        for r in rows
    ]


# --- alerts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewAlert:
    alert_id: uuid.UUID
    customer_id: str
    status: AlertStatus
    rule: str
    reason: str
    value_at_risk_minor: int
    currency: str
    segment: str
    tier: str | None
    merchant_id: str | None
    last_purchase_at: datetime
    tripped_at: datetime


async def open_alerts(
    conn: AsyncConnection, customer_ids: Iterable[str], kind: str = LAPSE_KIND
) -> dict[str, OpenAlert]:
    ids = list(set(customer_ids))
    if not ids:
        return {}
    query = sa.select(
        alerts.c.alert_id, alerts.c.customer_id, alerts.c.status, alerts.c.last_purchase_at
    ).where(alerts.c.customer_id.in_(ids), alerts.c.kind == kind, alerts.c.closed_at.is_(None))
    rows = (await conn.execute(query)).all()
    return {
        row.customer_id: OpenAlert(
            row.alert_id, row.customer_id, AlertStatus(row.status), row.last_purchase_at
        )
        for row in rows
    }


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


async def open_new_alerts(
    conn: AsyncConnection, new: Sequence[NewAlert], opened_at: datetime
) -> set[uuid.UUID]:
    """Insert alerts in one statement; returns the ids actually opened (an open one per
    customer and kind, or the same alert opened before, makes the database refuse quietly)."""
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
    return set((await conn.execute(_OPEN_ALERTS, params)).scalars().all())


def _alert_row(alert: NewAlert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "customer_id": alert.customer_id,
        "status": alert.status.value,
        "rule": alert.rule,
        "reason": alert.reason,
        "value_at_risk_minor": alert.value_at_risk_minor,
        "currency": alert.currency,
        "segment": alert.segment,
        "tier": alert.tier,
        "merchant_id": alert.merchant_id,
        "last_purchase_at": alert.last_purchase_at,
        "tripped_at": alert.tripped_at,
    }


async def escalate_alert(conn: AsyncConnection, alert: NewAlert, escalated_at: datetime) -> bool:
    """Move an open at-risk alert to lapsed with fresh facts; False if it was not at risk."""
    facts = _alert_row(alert)
    for key in ("alert_id", "customer_id", "currency", "last_purchase_at", "tripped_at"):
        facts.pop(key)
    result = await conn.execute(
        sa.update(alerts)
        .where(
            alerts.c.alert_id == alert.alert_id,
            alerts.c.status == AlertStatus.AT_RISK.value,
            alerts.c.closed_at.is_(None),
        )
        .values(**facts, escalated_at=escalated_at)
    )
    return result.rowcount == 1


async def close_alerts(
    conn: AsyncConnection, closures: Mapping[uuid.UUID, tuple[datetime, uuid.UUID]]
) -> None:
    """Close alerts: alert id -> (when, the purchase event that closed it)."""
    if not closures:
        return
    await conn.execute(
        sa.text(
            "UPDATE alerts AS al SET closed_at = c.at, closed_by_event_id = c.event_id "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:ats AS timestamptz[]),"
            " CAST(:events AS uuid[])) AS c(id, at, event_id) "
            "WHERE al.alert_id = c.id AND al.closed_at IS NULL"
        ),
        {
            "ids": list(closures),
            "ats": [at for at, _ in closures.values()],
            "events": [event for _, event in closures.values()],
        },
    )


async def acknowledge_alert(
    conn: AsyncConnection,
    alert_id: uuid.UUID,
    *,
    by: str,
    note: str,
    key_id: str | None,
    at: datetime,
    claimed_by: str | None = None,
) -> Mapping[Any, Any] | None:
    """Operations saw the alert. The FIRST acknowledgement is kept whole (who, when, note):
    repeating it changes nothing, so the record of who acted first cannot be rewritten.

    Returns the alert row as it stands afterwards, or None if there is no such alert.
    """
    await conn.execute(
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
    query = sa.select(alerts).where(alerts.c.alert_id == alert_id)
    return (await conn.execute(query)).mappings().first()


async def api_key_name(conn: AsyncConnection, key_id: str) -> str | None:
    """The name an API key was created with (who holds it), for the audit record."""
    return await conn.scalar(sa.select(api_keys.c.name).where(api_keys.c.key_id == key_id))


# --- event clock -------------------------------------------------------------------------


async def advance_event_clock(
    conn: AsyncConnection, moment: datetime, clock: str = POS_CLOCK
) -> None:
    """The clock moves to `moment` if that is later; it never goes back."""
    statement = pg_insert(event_clock).values(clock=clock, latest_occurred_at=moment)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["clock"],
            set_={"latest_occurred_at": moment, "updated_at": sa.func.now()},
            where=event_clock.c.latest_occurred_at < moment,
        )
    )


async def read_event_clock(conn: AsyncConnection, clock: str = POS_CLOCK) -> datetime | None:
    query = sa.select(event_clock.c.latest_occurred_at).where(event_clock.c.clock == clock)
    return await conn.scalar(query)


# --- thresholds --------------------------------------------------------------------------


async def load_threshold_book(conn: AsyncConnection) -> ThresholdBook:
    rows = (await conn.execute(sa.select(alert_thresholds))).mappings().all()
    book = ThresholdBook()
    for row in rows:
        overrides = stored_overrides(row)
        if overrides is None:
            continue
        scope = ThresholdScope(row["scope"])
        if scope is ThresholdScope.DEFAULT:
            book.default = overrides
        elif scope is ThresholdScope.MERCHANT:
            book.by_merchant[row["scope_id"]] = overrides
        else:
            book.by_category[row["scope_id"]] = overrides
    return book


def stored_overrides(row: Mapping[Any, Any]) -> ThresholdOverrides | None:
    """A stored scope, re-checked against today's ranges; None (logged) if it breaks one.

    A value written before the ranges existed, or straight into the table, must not take the
    consumer or a scheduler down: the scope is skipped and the wider scope applies.
    """
    try:
        return ThresholdOverrides.model_validate(row["settings"])
    except ValidationError as exc:
        log.error(
            "thresholds of scope %s/%s ignored, a stored value is out of range: %s",
            row["scope"],
            row["scope_id"] or "-",
            exc.errors(include_url=False),
        )
        return None


async def put_thresholds(
    conn: AsyncConnection, scope: ThresholdScope, scope_id: str, overrides: ThresholdOverrides
) -> None:
    """Store one scope's overrides (the caller checks them with `thresholds.merged` first)."""
    key = "" if scope is ThresholdScope.DEFAULT else scope_id
    settings = overrides.model_dump(exclude_none=True)
    statement = pg_insert(alert_thresholds).values(
        scope=scope.value, scope_id=key, settings=settings
    )
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["scope", "scope_id"],
            set_={"settings": settings, "updated_at": sa.func.now()},
        )
    )


# --- model parameters --------------------------------------------------------------------


async def latest_model(conn: AsyncConnection) -> StoredModel | None:
    query = sa.select(model_parameters).order_by(model_parameters.c.fit_id.desc()).limit(1)
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else model_from_row(row)


async def mark_checks_rescheduled(conn: AsyncConnection, fit_id: int) -> datetime:
    """Record that every pending lapse check now follows fit `fit_id`; returns when."""
    statement = (
        sa.update(model_parameters)
        .where(model_parameters.c.fit_id == fit_id)
        .values(checks_rescheduled_at=sa.func.now())
        .returning(model_parameters.c.checks_rescheduled_at)
    )
    marked: datetime = (await conn.execute(statement)).scalar_one()
    return marked


async def store_model(conn: AsyncConnection, params: BgNbdParams, as_of: datetime) -> StoredModel:
    statement = (
        sa.insert(model_parameters)
        .values(
            r=params.r,
            alpha=params.alpha,
            a=params.a,
            b=params.b,
            time_unit_days=params.unit_days,
            log_likelihood=params.log_likelihood,
            customers_fitted=params.n_customers,
            as_of=as_of,
        )
        .returning(*model_parameters.c)
    )
    return model_from_row((await conn.execute(statement)).mappings().one())
