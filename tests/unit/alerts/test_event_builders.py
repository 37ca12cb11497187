"""The typed builders of the alerts service's outgoing events send exactly what it sent
before they existed: `data/outgoing_events.json` was written by the inline builders of the
scanner and the consumer handlers (before issue 11) from the same inputs as below."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.alerts.activity.events import customer_reactivated
from services.alerts.domain.activity import ActivitySummary
from services.alerts.domain.lapse import AlertStatus
from services.alerts.domain.records import CustomerActivity, NewAlert, OpenAlert
from services.alerts.followups.events import follow_up_due
from services.alerts.lapse.events import alert_escalated, alert_raised
from shared.contracts.pos import PurchaseCompleted

PINNED = Path(__file__).parent / "data" / "outgoing_events.json"
LAST_PURCHASE = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
ALERT_ID = uuid.UUID(int=7)


def _alert() -> NewAlert:
    return NewAlert(
        alert_id=ALERT_ID,
        customer_id="c-1",
        status=AlertStatus.AT_RISK,
        rule="own_rhythm",
        reason="usually buys every 7 days; last purchase 24 days ago",
        value_at_risk_minor=77143,
        currency="EUR",
        segment="A",
        tier="gold",
        merchant_id="m-1",
        last_purchase_at=LAST_PURCHASE,
        tripped_at=LAST_PURCHASE + timedelta(days=24, hours=5),
    )


def _comeback() -> PurchaseCompleted:
    return PurchaseCompleted.model_validate(
        {
            "event_id": str(uuid.UUID(int=9)),
            "type": "purchase.completed",
            "version": 1,
            "occurred_at": (LAST_PURCHASE + timedelta(days=30)).isoformat(),
            "source": "till",
            "customer_id": "c-1",
            "data": {
                "order_id": "o-1",
                "merchant_id": "m-1",
                "store_id": "s-1",
                "amount": "40.00",
                "currency": "EUR",
                "items": [{"sku": "x", "category": "food", "quantity": 1, "unit_price": "40.00"}],
            },
        }
    )


def _built() -> list[dict[str, Any]]:
    first_timer = CustomerActivity(
        "c-1",
        ActivitySummary(first_purchase_at=LAST_PURCHASE),
        first_merchant_id="m-1",
        first_store_id="s-1",
        follow_up_due_at=LAST_PURCHASE + timedelta(days=7),
    )
    open_alert = OpenAlert(ALERT_ID, "c-1", AlertStatus.AT_RISK, LAST_PURCHASE)
    events = [
        alert_raised(_alert()),
        alert_escalated(_alert()),
        follow_up_due(first_timer),
        customer_reactivated(_comeback(), LAST_PURCHASE, open_alert, "at_risk"),
    ]
    return [event.model_dump(mode="json") for event in events]


def test_every_outgoing_event_is_built_exactly_as_before_the_builders_existed() -> None:
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    built = _built()
    for before, now in zip(pinned, built, strict=True):
        assert now == before, f"the payload of {before['type']} changed"


def test_the_same_alert_gives_the_same_event_ids_so_a_replay_cannot_send_it_twice() -> None:
    assert [e["event_id"] for e in _built()] == [e["event_id"] for e in _built()]
    assert alert_raised(_alert()).event_id != alert_escalated(_alert()).event_id


def test_a_follow_up_needs_a_first_purchase_and_a_due_time() -> None:
    with pytest.raises(ValueError, match="c-2"):
        follow_up_due(CustomerActivity("c-2"))
