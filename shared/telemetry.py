"""Prometheus metrics of the chassis, the same in every service (labelled by consumer group or
service). A service's own gauges live in its `metrics.py`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("loyalty_events_consumed_total", "Messages read from Kafka", ["group"])
EVENTS_APPLIED = Counter("loyalty_events_applied_total", "Events applied to state", ["group"])
EVENTS_DUPLICATE = Counter(
    "loyalty_events_duplicate_total", "Events skipped because they were already applied", ["group"]
)
EVENTS_DEAD_LETTERED = Counter(
    "loyalty_events_dead_lettered_total",
    "Messages sent to the dead-letter topic",
    ["group", "code"],
)
BATCH_SECONDS = Histogram(
    "loyalty_batch_seconds",
    "Time to apply one consumed batch",
    ["group"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "loyalty_consumer_lag", "Messages behind the partition end", ["group", "topic"]
)
TRANSIENT_RETRIES = Counter(
    "loyalty_transient_retries_total", "Batches retried after a transient fault", ["group"]
)
CLIENT_REBUILDS = Counter(
    "loyalty_consumer_client_rebuilds_total",
    "Kafka consumer clients replaced after they broke",
    ["group"],
)
OUTBOX_BACKLOG = Gauge("loyalty_outbox_backlog", "Outbox rows not yet published", ["service"])
OUTBOX_PUBLISHED = Counter("loyalty_outbox_published_total", "Outbox rows published", ["service"])
