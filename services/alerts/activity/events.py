"""The event a purchase after a noticed silence emits: `customer.reactivated`."""

from __future__ import annotations

from datetime import datetime

from services.alerts.domain.activity import days_between
from services.alerts.domain.records import OpenAlert
from shared.contracts.alerts import ALERTS_SOURCE, CustomerReactivated, CustomerReactivatedData
from shared.contracts.envelope import derived_event_id
from shared.contracts.pos import PurchaseCompleted


def customer_reactivated(
    purchase: PurchaseCompleted,
    previous_purchase_at: datetime,
    open_alert: OpenAlert | None,
    status: str,
) -> CustomerReactivated:
    """The customer came back: `status` is the open alert's, or what the rules said if none.

    Its id derives from the purchase, so a redelivered purchase cannot send it twice.
    """
    return CustomerReactivated(
        event_id=derived_event_id(purchase.event_id, "customer.reactivated"),
        type="customer.reactivated",
        version=1,
        occurred_at=purchase.occurred_at,
        source=ALERTS_SOURCE,
        customer_id=purchase.customer_id,
        data=CustomerReactivatedData(
            days_away=max(0, int(days_between(previous_purchase_at, purchase.occurred_at))),
            alert_was_raised=open_alert is not None,
            alert_id=open_alert.alert_id if open_alert else None,
            alert_status=status,
            previous_purchase_at=previous_purchase_at,
            merchant_id=purchase.data.merchant_id,
            order_id=purchase.data.order_id,
        ),
    )
