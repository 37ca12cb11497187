"""The event a first purchase leads to: `follow_up.due`."""

from __future__ import annotations

from services.alerts.domain.activity import days_between
from services.alerts.domain.records import CustomerActivity
from shared.contracts.alerts import ALERTS_SOURCE, FollowUpDue, FollowUpDueData
from shared.contracts.envelope import derived_event_id


def follow_up_due(activity: CustomerActivity) -> FollowUpDue:
    """`follow_up.due`: its id comes from the customer alone, so it exists once per customer.

    Its content depends only on the first purchase (not on what happened since), so a replay
    that raises it at another moment still sends the same event.
    """
    first, due = activity.summary.first_purchase_at, activity.follow_up_due_at
    if first is None or due is None:
        raise ValueError(f"customer {activity.customer_id} has no follow-up due")
    return FollowUpDue(
        event_id=derived_event_id(f"follow-up:{activity.customer_id}", "follow_up.due"),
        type="follow_up.due",
        version=1,
        occurred_at=due,
        source=ALERTS_SOURCE,
        customer_id=activity.customer_id,
        data=FollowUpDueData(
            first_purchase_at=first,
            merchant_id=activity.first_merchant_id,
            store_id=activity.first_store_id,
            days_after_first_purchase=max(0, int(days_between(first, due))),
        ),
    )
