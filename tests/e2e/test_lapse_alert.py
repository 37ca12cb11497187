"""End to end: purchases go in through librdkafka (confluent-kafka), operations read the
lapse alert on loyalty.alerts.

Under `make run` the alerts service follows event time, a clock that only moves forward.
The scenario is therefore dated after whatever that clock and the wall clock say now (a day
later), not at fixed dates: earlier tests, an earlier run or `make demo` may have moved the
clock, and purchases still in flight from them are dated no later than wall time, so none
can move it past this scenario's own dates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.e2e.clients import (
    alerts_now,
    alerts_so_far,
    customer_activity,
    eventually,
    fresh_id,
    next_alerts_about,
    ops_consumer,
    publish_with_librdkafka,
    purchase,
    two_more_scan_passes,
)
from tests.e2e.conftest import SCAN_INTERVAL_SECONDS, System

WEEKLY_VISITS = 4
SILENCE = timedelta(days=69)  # far beyond three times a weekly rhythm


def test_a_weekly_customer_who_stops_coming_raises_a_lapse_alert_after_a_time_jump(
    system: System,
) -> None:
    regular, merchant = fresh_id("l"), fresh_id("m-e2e-diner")
    with httpx.Client(timeout=10) as http:
        start = max(alerts_now(system, http), datetime.now(UTC)) + timedelta(days=1)
        visits = [start + timedelta(weeks=i) for i in range(WEEKLY_VISITS)]
        publish_with_librdkafka(
            system.bootstrap_servers,
            [
                purchase(regular, merchant, f"o-{regular}-{i}", at, "40.00")
                for i, at in enumerate(visits)
            ],
        )

        def seen() -> dict[str, Any] | None:
            view = customer_activity(system, http, regular)
            return view if view and view["summary"]["purchase_count"] == WEEKLY_VISITS else None

        recorded = eventually(seen, "the alerts service recording the weekly visits")
        now = datetime.fromisoformat(recorded["as_of"])
        assert now == visits[-1], "event time must stand at the last weekly visit"
        assert recorded["open_alert"] is None
        first_check = recorded["next_check_at"]
        assert first_check and datetime.fromisoformat(first_check) > now, (
            "a weekly customer seen today must not be due for a lapse check today"
        )
        # Give the scanner its chance to be wrong, and prove it took it: a whole pass began
        # after the visits were recorded (waiting a fixed time could pass without one).
        two_more_scan_passes(system, http, timeout=30 * SCAN_INTERVAL_SECONDS)

    consumer = ops_consumer(system, f"e2e-ops-{regular}")
    try:
        assert not alerts_so_far(consumer, regular), (
            "no lapse alert may be raised while event time has not moved on"
        )
        jump = fresh_id("j")  # someone else buys after two silent months: event time jumps
        publish_with_librdkafka(
            system.bootstrap_servers,
            [purchase(jump, merchant, f"o-{jump}-1", visits[-1] + SILENCE, "10.00")],
        )
        raised = next_alerts_about(consumer, regular, timeout=90)
    finally:
        consumer.close()
    assert raised, "a weekly customer silent for two months must raise a lapse alert"
    first = raised[0]
    assert first["type"] == "alert.raised"
    assert first["data"]["kind"] == "lapse"
    assert first["data"]["days_since_last_purchase"] >= 21
    assert first["data"]["reason"], "an alert must say why, for the person who reaches out"
