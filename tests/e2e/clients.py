"""What foreign clients do in the end-to-end tests: a till publishing through librdkafka,
polling over HTTP until something happens, and reading the alerts service's "now".

Every test makes its own customers and merchant (`fresh_id`) and dates its purchases
relative to the clock of the service that judges them, never to a moment fixed at import
time, so the tests pass alone, in any order and against a system that has seen other
traffic before (a second run, or `make demo`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from tests.e2e.conftest import System

T = TypeVar("T")


def fresh_id(prefix: str) -> str:
    """A customer, merchant or order id no other test (or earlier run) has used."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 90) -> T:
    """Poll `probe` until it returns something; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            found = probe()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            found, last = None, exc
        if found is not None:
            return found
        time.sleep(0.25)
    pytest.fail(f"{what} did not happen within {timeout:g}s (last: {last!r})")


def purchase(customer: str, merchant: str, order: str, at: datetime, amount: str) -> dict[str, Any]:
    """A `purchase.completed` as a till would write it: JSON, decimal string amounts."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": "purchase.completed",
        "version": 1,
        "occurred_at": at.isoformat(),
        "source": "e2e-till",
        "customer_id": customer,
        "data": {
            "order_id": order,
            "merchant_id": merchant,
            "store_id": f"s-{merchant}",
            "amount": amount,
            "currency": "EUR",
            "items": [
                {"sku": "menu-1", "category": "restaurant", "quantity": 1, "unit_price": amount}
            ],
        },
    }


def publish_with_librdkafka(bootstrap: str, events: list[dict[str, Any]]) -> None:
    """Publish to pos.purchases with an idempotent librdkafka producer; fail on any refusal."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for event in events:
        producer.produce(
            "pos.purchases",
            orjson.dumps(event),
            key=event["customer_id"].encode(),
            on_delivery=delivered,
        )
    assert producer.flush(30) == 0, "librdkafka could not deliver every purchase"
    assert not failures, f"the broker refused purchases: {failures}"


def customer_activity(system: System, http: httpx.Client, customer: str) -> dict[str, Any] | None:
    """The alerts service's view of one customer; None while it does not know them yet."""
    answer = http.get(
        f"{system.urls['alerts']}/v1/customers/{customer}/activity",
        headers=system.headers("alerts"),
    )
    return dict(answer.json()) if answer.status_code == 200 else None


def alerts_now(system: System, http: httpx.Client) -> datetime:
    """The alerts service's "now": under `make run`, the latest purchase time it has seen.

    Read as the `as_of` of a probe customer's activity, the only place the service shows it.
    The probe's one purchase is dated an hour before wall time, so it moves the clock only
    when the clock is behind that (or has not started), and the answer is the clock after it.
    """
    probe = fresh_id("clock-probe")
    moment = datetime.now(UTC) - timedelta(hours=1)
    publish_with_librdkafka(
        system.bootstrap_servers,
        [purchase(probe, fresh_id("m-e2e-probe"), f"o-{probe}", moment, "1.00")],
    )
    view = eventually(
        lambda: customer_activity(system, http, probe), "the alerts service seeing the probe"
    )
    return datetime.fromisoformat(view["as_of"])


def ops_consumer(system: System, group: str) -> Consumer:
    """A librdkafka consumer of loyalty.alerts from the beginning, as an operations tool
    would read it; it reports reaching the end of each partition (see `alerts_so_far`)."""
    consumer = Consumer(
        {
            "bootstrap.servers": system.bootstrap_servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe(["loyalty.alerts"])
    return consumer


def _about(value: bytes, customer: str) -> dict[str, Any] | None:
    event = orjson.loads(value)
    if event["customer_id"] == customer and event["type"].startswith("alert."):
        return dict(event)
    return None


def alerts_so_far(consumer: Consumer, customer: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Every `alert.*` about `customer` on the topic up to its end, read on every partition.

    Waiting for the end of each assigned partition, not for a quiet moment, is what makes
    "there is none" a finding rather than a consumer that had not joined its group yet.
    """
    found: list[dict[str, Any]] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assigned = {p.partition for p in consumer.assignment()}
        if assigned and assigned <= at_end:
            return found
        message = consumer.poll(0.5)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            partition = message.partition()
            if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                at_end.add(partition)
            continue
        event = _about(message.value() or b"{}", customer)
        if event is not None:
            found.append(event)
    pytest.fail(f"loyalty.alerts could not be read to its end within {timeout:g}s")


def next_alerts_about(consumer: Consumer, customer: str, timeout: float) -> list[dict[str, Any]]:
    """The next `alert.*` events about `customer`: waits up to `timeout` seconds for the
    first, then takes what follows until the topic goes quiet."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        value = message.value() if message is not None and not message.error() else None
        if value is None:
            if found:
                break
            continue
        event = _about(value, customer)
        if event is not None:
            found.append(event)
    return found


SCAN_PASSES = "loyalty_alerts_scan_passes_total"


def scan_passes(system: System, http: httpx.Client) -> int:
    """How many passes over everything due the alerts scanner has completed (its /metrics)."""
    answer = http.get(f"{system.urls['alerts']}/metrics")
    answer.raise_for_status()
    for line in answer.text.splitlines():
        name, _, value = line.partition(" ")
        if name == SCAN_PASSES:
            return int(float(value))
    raise ValueError(f"{SCAN_PASSES} is not on the alerts service's /metrics")


def two_more_scan_passes(system: System, http: httpx.Client, timeout: float = 90) -> None:
    """Wait until the scanner completed two passes after now: at least one whole pass then
    STARTED after this call, so whatever was recorded before was there for it to judge."""
    before = scan_passes(system, http)
    eventually(
        lambda: True if scan_passes(system, http) >= before + 2 else None,
        f"the alerts scanner completing two passes after pass {before}",
        timeout=timeout,
    )
