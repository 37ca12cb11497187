"""The events a lapse alert emits: `alert.raised` and `alert.escalated`.

Ids are derived from the alert (itself derived from the customer and the purchase the
silence follows) and the facts are those at the moment the rule tripped, so a replay or a
second scanner builds the very same event.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from services.alerts.domain.activity import days_between
from services.alerts.domain.records import LAPSE_KIND, NewAlert
from shared.contracts.alerts import (
    ALERTS_SOURCE,
    AlertEscalated,
    AlertEscalatedData,
    AlertRaised,
    AlertRaisedData,
)
from shared.contracts.envelope import derived_event_id
from shared.money import format_money


def lapse_alert_id(customer_id: str, last_purchase_at: datetime) -> uuid.UUID:
    """One lapse alert per silence: the customer and the purchase the silence follows."""
    moment = last_purchase_at.astimezone(UTC).isoformat()
    return derived_event_id(f"alert:{customer_id}", f"{LAPSE_KIND}:{moment}")


def alert_raised(alert: NewAlert) -> AlertRaised:
    """`alert.raised`: a customer's silence tripped a lapse rule."""
    return AlertRaised(
        event_id=derived_event_id(alert.alert_id, "alert.raised"),
        type="alert.raised",
        version=1,
        occurred_at=alert.tripped_at,
        source=ALERTS_SOURCE,
        customer_id=alert.customer_id,
        data=AlertRaisedData.model_validate({**_facts(alert), "status": alert.status.value}),
    )


def alert_escalated(alert: NewAlert) -> AlertEscalated:
    """`alert.escalated`: an at-risk customer stayed silent long enough to count as lapsed."""
    return AlertEscalated(
        event_id=derived_event_id(alert.alert_id, "alert.escalated"),
        type="alert.escalated",
        version=1,
        occurred_at=alert.tripped_at,
        source=ALERTS_SOURCE,
        customer_id=alert.customer_id,
        data=AlertEscalatedData.model_validate(_facts(alert)),
    )


def _facts(alert: NewAlert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "kind": LAPSE_KIND,
        "rule": alert.rule,
        "reason": alert.reason,
        "value_at_risk": format_money(alert.value_at_risk_minor, alert.currency),
        "currency": alert.currency,
        "segment": alert.segment,
        "tier": alert.tier,
        "merchant_id": alert.merchant_id,
        "last_purchase_at": alert.last_purchase_at,
        "days_since_last_purchase": max(
            0, int(days_between(alert.last_purchase_at, alert.tripped_at))
        ),
    }
