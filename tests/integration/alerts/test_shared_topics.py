"""The alerts consumer on its three topics: tiers from points events, the rest skipped."""

from __future__ import annotations

import uuid

import pytest

from shared.contracts.alerts import AlertRaised
from tests.integration.alerts.conftest import (
    AlertsHarness,
    credit_requested,
    day,
    every,
    points_accrued,
    tier_changed,
)

pytestmark = pytest.mark.integration


async def test_points_events_keep_the_tier_and_other_known_types_are_skipped(
    harness: AlertsHarness, unique: str
) -> None:
    weekly, points_only = f"weekly-{unique}", f"points-only-{unique}"
    await harness.publish(every(weekly, days=7, visits=5, last=28))
    await harness.publish(
        [
            points_accrued(weekly, day(7), "member"),
            tier_changed(weekly, day(21), "gold", previous="member"),
            points_accrued(weekly, day(28), "gold"),
            points_accrued(points_only, day(3), "silver"),
        ],
        topic=harness.points_topic,
    )
    await harness.settled()
    # A snapshot older than the tier change arrives late: it must not demote the customer.
    await harness.publish([points_accrued(weekly, day(14), "member")], topic=harness.points_topic)
    unknown = {**credit_requested(weekly, day(28)), "type": "reward.teleported"}
    ignored = credit_requested(weekly, day(28))
    await harness.publish([ignored, unknown], topic=harness.rewards_topic)
    await harness.settled()

    tiers = {
        r["customer_id"]: (r["tier"], r["tier_changed_at"], r["purchase_count"])
        for r in await harness.rows(
            "SELECT customer_id, tier, tier_changed_at, purchase_count FROM customer_activity"
        )
    }
    assert tiers[weekly] == ("gold", day(21), 5), (
        f"tier.changed made the customer gold on day 21; a late snapshot must not undo it: {tiers}"
    )
    assert tiers[points_only] == ("silver", day(3), 0), "a tier is kept before any purchase"

    dead = await harness.rows("SELECT topic, error_code, event_id FROM dead_letters")
    assert [(d["topic"], d["error_code"]) for d in dead] == [
        (harness.rewards_topic, "unknown_type")
    ], f"only a type missing from the contracts is dead-lettered: {dead}"
    skipped = await harness.scalar(
        "SELECT count(*) FROM processed_events WHERE event_id = :id",
        id=uuid.UUID(ignored["event_id"]),
    )
    assert skipped == 1, "a known type with no handler here is acknowledged (processed), not lost"
    clock = await harness.scalar("SELECT latest_occurred_at FROM event_clock")
    assert clock == day(28), "only purchases and returns move the event clock"

    assert (await harness.scan(day(28 + 22))).raised == 1
    alert_tier = await harness.scalar("SELECT tier FROM alerts WHERE customer_id = :c", c=weekly)
    assert alert_tier == "gold", "the alert carries the customer's tier for prioritising"
    events = await harness.alert_events(expected=2)  # the alert and the weekly's follow-up
    raised = [e for e in events if isinstance(e, AlertRaised)]
    assert [e.data.tier for e in raised] == ["gold"]
