"""Topic names. Message key is always the customer id, so one customer's events
stay ordered on one partition."""

from __future__ import annotations

from typing import Final


class Topics:
    """Every topic the platform reads or writes."""

    POS_PURCHASES: Final = "pos.purchases"  # purchases and returns share it: one order per customer
    SERVICE_INCIDENTS: Final = "ops.service-incidents"
    POINTS: Final = "loyalty.points"
    REWARDS: Final = "loyalty.rewards"
    ALERTS: Final = "loyalty.alerts"

    ALL: Final = (POS_PURCHASES, SERVICE_INCIDENTS, POINTS, REWARDS, ALERTS)


def dead_letter_topic(group_id: str) -> str:
    """Dead-letter topic of a consumer group: `<group>.dlq`."""
    return f"{group_id}.dlq"
