"""Follow-ups: a set delay after a customer's first purchase, someone says thank you.

The due time is set when the first purchase is recorded (`domain.schedule.follow_up_due_at`);
the scanner raises what is due, once per customer, in the same pass as the lapse checks.
"""

from __future__ import annotations

from services.alerts.followups.events import follow_up_due
from services.alerts.uow import AlertsUnitOfWork


async def raise_due_follow_ups(uow: AlertsUnitOfWork, limit: int, alerts_topic: str) -> int:
    """Claim up to `limit` follow-ups due at `uow.now`, emit them, mark them raised."""
    due = await uow.activities.claim_due_follow_ups(uow.now, limit)
    for activity in due:
        uow.emit(alerts_topic, follow_up_due(activity))
    await uow.activities.mark_follow_ups_raised([a.customer_id for a in due], uow.now)
    return len(due)
