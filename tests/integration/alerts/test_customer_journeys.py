"""Reactivation, follow-ups, returns and event time, driven through Kafka."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.alerts.clock.service import EventTimeClock
from services.alerts.lapse.service import AlertScanner
from shared.contracts.alerts import CustomerReactivated, FollowUpDue
from tests.integration.alerts.conftest import AlertsHarness, day, every, refund, shopping

pytestmark = pytest.mark.integration

MINUTE = timedelta(minutes=1)


async def test_a_returning_customer_closes_the_alert_and_is_counted_as_reactivated(
    harness: AlertsHarness, unique: str
) -> None:
    alerted, unnoticed, regular = f"alerted-{unique}", f"unnoticed-{unique}", f"regular-{unique}"
    await harness.publish(every(alerted, days=7, visits=5, last=28))
    await harness.publish([*every(regular, days=7, visits=5, last=28), shopping(regular, day(36))])
    await harness.settled()
    assert (await harness.scan(day(28 + 22))).raised == 1, "only the silent weekly shopper"
    alert_id = await harness.scalar("SELECT alert_id FROM alerts WHERE customer_id = :c", c=alerted)

    # `unnoticed` went just as quiet, but the scanner had not looked at them yet.
    await harness.publish(every(unnoticed, days=7, visits=5, last=28))
    await harness.publish([shopping(alerted, day(28 + 25)), shopping(unnoticed, day(28 + 30))])
    await harness.settled()

    still_open = await harness.scalar("SELECT count(*) FROM alerts WHERE closed_at IS NULL")
    assert still_open == 0, "a purchase must close the customer's open alert"
    events = await harness.alert_events(expected=5, prefix="customer.")  # + raised, 2 follow-ups
    by_customer = {e.customer_id: e for e in events if isinstance(e, CustomerReactivated)}
    assert set(by_customer) == {alerted, unnoticed}, (
        f"only customers back from a noticeable silence are reactivated: {by_customer}"
    )
    back = by_customer[alerted].data
    assert (back.days_away, back.alert_was_raised, back.alert_id, back.alert_status) == (
        25,
        True,
        alert_id,
        "at_risk",
    ), f"the alerted customer's return was misreported: {back}"
    silent = by_customer[unnoticed].data
    assert (silent.days_away, silent.alert_was_raised, silent.alert_id) == (30, False, None), (
        "a lapsing customer who returned before any alert counts as reactivated, unalerted"
    )
    assert silent.alert_status == "at_risk", "the rules had them at risk when they came back"
    due = await harness.scalar(
        "SELECT next_check_at FROM customer_activity WHERE customer_id = :c", c=alerted
    )
    assert due is not None and due > day(28 + 25), "the new silence is watched again"
    # The 25-day absence broke the weekly rhythm (gaps 7, 7, 7, 7, 25: variation 0.76 > 0.5),
    # so the fixed 113-day window is what watches this silence.
    again = await harness.scan(day(28 + 25 + 114))
    new_alert = await harness.scalar(
        "SELECT alert_id FROM alerts WHERE customer_id = :c AND closed_at IS NULL", c=alerted
    )
    assert again.raised >= 1 and new_alert not in (None, alert_id), (
        "a new silence after the return gets its own, new alert"
    )


async def test_a_first_purchase_raises_one_follow_up_seven_days_later(
    harness: AlertsHarness, unique: str
) -> None:
    guest, later_guest = f"guest-{unique}", f"later-{unique}"
    await harness.publish([shopping(guest, day(0), merchant="coffee")])
    await harness.settled()
    assert (await harness.scan(day(6))).follow_ups == 0, "too early for the follow-up"

    # Event time: another guest's purchase a week later moves the clock; nothing else does.
    await harness.publish([shopping(later_guest, day(7), merchant="coffee")])
    await harness.settled()
    clock = await harness.scalar("SELECT latest_occurred_at FROM event_clock")
    assert clock == day(7), "the event clock is the latest occurred_at seen"
    scanner = AlertScanner(harness.engine, EventTimeClock(), alerts_topic=harness.alerts_topic)
    assert (await scanner.scan_due()).follow_ups == 1, "the first guest is due at event time"

    await harness.publish([shopping(guest, day(9), merchant="coffee")])
    await harness.settled()
    assert (await harness.scan(day(10))).follow_ups == 0, "a follow-up is raised once"
    assert (await harness.scan(day(15))).follow_ups == 1, "the later guest's own follow-up"
    assert (await harness.scan(day(60))).follow_ups == 0, "and nobody gets a second one"

    events = await harness.alert_events(expected=2, prefix="follow_up.")
    # Two customers, two keys: the topic keeps order per customer only, and one relay pass
    # may publish both rows to their partitions at once. Their own times tell them apart.
    follow_ups = sorted(
        (e for e in events if isinstance(e, FollowUpDue)), key=lambda e: e.occurred_at
    )
    assert [e.customer_id for e in follow_ups] == [guest, later_guest]
    first = follow_ups[0]
    assert (first.occurred_at, first.data.merchant_id, first.data.days_after_first_purchase) == (
        day(7),
        "coffee",
        7,
    )


async def test_returns_reduce_spend_and_a_foreign_currency_is_dead_lettered(
    harness: AlertsHarness, unique: str
) -> None:
    customer = f"returner-{unique}"
    await harness.publish(
        [
            shopping(customer, day(0), amount="60.00"),
            shopping(customer, day(7), amount="40.00", merchant="m2"),
            refund(customer, day(8), amount="25.00"),
            shopping(customer, day(9), amount="1000", currency="JPY"),
        ]
    )
    await harness.settled()
    row = (
        await harness.rows(
            "SELECT spend_minor, purchase_count, visit_count, merchant_spend_minor"
            " FROM customer_activity WHERE customer_id = :c",
            c=customer,
        )
    )[0]
    assert (row["spend_minor"], row["purchase_count"], row["visit_count"]) == (7_500, 2, 2), (
        f"a 25.00 refund leaves 75.00 of spend over two visits, got {dict(row)}"
    )
    assert row["merchant_spend_minor"] == {"m1": 3_500, "m2": 4_000}
    dead = await harness.rows("SELECT error_code FROM dead_letters")
    assert [d["error_code"] for d in dead] == ["currency_mismatch"], (
        "a purchase in another currency must be dead-lettered, not mixed into the spend"
    )
