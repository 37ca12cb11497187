"""Settings of the points service, from POINTS_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.contracts.topics import Topics
from shared.settings import ServiceSettings


class PointsSettings(ServiceSettings):
    """POINTS_DATABASE_URL is required; everything else has a working default."""

    model_config = SettingsConfigDict(env_prefix="POINTS_", extra="ignore")

    consumer_group: str = "points"
    http_port: int = 8001
    points_topic: str = Topics.POINTS
    purchases_topic: str = Topics.POS_PURCHASES
    rewards_topic: str = Topics.REWARDS
    jobs_interval_seconds: float = Field(default=60.0, gt=0, le=86_400)
    outstanding_gauge_interval_seconds: float = Field(default=60.0, gt=0, le=86_400)
    expiry_batch: int = Field(default=500, ge=1, le=50_000)
    review_batch: int = Field(default=200, ge=1, le=50_000)
    settlement_batch: int = Field(default=500, ge=1, le=50_000)
    # Purchases come in faster than any other service's events, and a batch's fixed cost
    # (about a dozen statements, a COMMIT, an offset commit, a relay pass) is spread over
    # twice as many: `python -m bench points --events 60000`, 4 runs each, interleaved,
    # 7.1k -> 7.7k events/s steady, 174 -> 163 µs of machine CPU per purchase; at 200,000
    # events 7.1k -> 7.5k. Part of the gain goes to the cyclic collector's pass after each
    # batch: 0.4 -> 5.9 µs per purchase. A rebalance waits for the batch in flight: about
    # half a second at that rate.
    # 4,000 -> 8,000 once the collector no longer walked decoded batches (gc.freeze) and
    # early writes overlapped the compute: `python -m bench points --events 120000`,
    # 8.3k -> 9.8k events/s steady, consumer 95.8 -> 84.5 and PostgreSQL 61.2 -> 53.1 µs
    # per purchase (per batch: a dozen statements, COMMIT, offset commit; per customer
    # seen in a batch: one account update); 12,000 gave 9.6k, 16,000 9.2k. A rebalance
    # now waits about 0.8 s for the batch in flight.
    max_batch: int = Field(default=8000, ge=1, le=50_000)
    # Consumer members this process runs in the group, on its one event loop, each with its
    # own partitions, transactions and batches of up to `max_batch`. While one waits for
    # PostgreSQL (the processed events, the reads, the save, the commit: ~40 µs of each
    # purchase's ~95-120 µs batch), the other computes, so the process's one core stops
    # idling. One `python -m services.points` on Tansu, `POINTS_CONSUMERS=1` and `=2
    # python -m bench scaleout` alternated: 9.3k and 8.9k -> 12.5k and 12.8k purchases/s
    # (Apache Kafka: 7.6k and 7.9k -> 8.8k and 10.9k); in-process runs of the accrual at
    # the same CPU per purchase, 1 member of 8,000 -> 2 of 4,000: 7,285 -> 8,698 and
    # 6,639 -> 7,920 events/s steady (2 of 8,000: 8,575 and 10,032).
    consumers: int = Field(default=2, ge=1, le=16)
    outbox_batch: int = Field(default=4000, ge=1, le=50_000)
    # False builds the app for HTTP only (tests, or an API-only deployment): no consumer,
    # no outbox relay, no due-time jobs.
    run_workers: bool = True
    # How long a process trusts its copy of the rule versions for balance reads; new
    # versions always start in the future, so a copy this young is stale only for a
    # version that takes effect within the TTL, and only for the tier progress shown.
    rules_cache_seconds: float = Field(default=5.0, ge=0, le=3_600)
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=3_600)
    # Processes serving HTTP (`python -m services.points`); each also runs the workers,
    # which are safe with several instances (consumer group, SKIP LOCKED, relay lock).
    http_workers: int = Field(default=1, ge=1, le=64)
