"""`processed_events` keeps an event id as long as a duplicate can still arrive, no longer.

Every consumed event id is recorded (shared.kafka.runtime) so a redelivery is a no-op.
A duplicate can arrive for as long as the topic still holds the original (a consumer
group reset to the earliest offset replays everything the topic retains) or a producer
retries it (seconds). So an id is kept for `retention` (setting `dedupe_retention_hours`,
default 192 h = 8 days, over Kafka's default 7-day topic retention) and pruned after:

- a replay *inside* the retention is still skipped (the id is still there);
- an event replayed *after* it, which only a topic retaining messages longer than the
  setting can deliver, is applied again. That is why the retention may not be shorter
  than any topic's `retention.ms` the broker reports: the pruner refuses to start (its
  worker crashes, so `/healthz` names the reason) rather than prune ids still needed.
  A topic that keeps messages forever (`retention.ms = -1`) cannot be covered by any
  retention; it is logged as a warning and pruning goes on.

The pruner deletes in batches (`dedupe_prune_batch` rows per transaction, oldest first,
through the index on `processed_at`), each batch claimed with `FOR UPDATE SKIP LOCKED`
so N instances prune side by side without waiting on each other or deleting twice. It
reads "now" from an injectable clock (the wall clock in service).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import processed_events
from shared.jobs import PeriodicJob
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
FOREVER = timedelta.max


class RetentionTooShort(ValueError):
    """The dedupe retention would forget ids a topic can still redeliver."""


def check_retention(retention: timedelta, topics: Mapping[str, timedelta]) -> None:
    """Refuse a retention shorter than a topic's; warn about topics that never expire."""
    for topic, kept in sorted(topics.items()):
        if kept == FOREVER:
            log.warning(
                "topic %s keeps messages forever: replays older than %s re-apply", topic, retention
            )
        elif kept > retention:
            raise RetentionTooShort(
                f"dedupe retention {retention} is shorter than topic {topic}'s retention {kept}: "
                "raise <SERVICE>_DEDUPE_RETENTION_HOURS to at least the topic's retention"
            )


async def topic_retentions(
    bootstrap_servers: str, topics: Iterable[str], patience: float = 10.0
) -> dict[str, timedelta]:
    """Each topic's `retention.ms` as the broker reports it; {} when it cannot tell."""
    names = sorted(set(topics))
    if not names:
        return {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    try:
        async with asyncio.timeout(patience):
            await admin.start()
            resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
            responses = await admin.describe_configs(resources)
    except Exception as exc:  # unknown is allowed: the setting's floor still applies
        log.warning("topic retention unknown (%s): dedupe retention not checked", exc)
        return {}
    finally:
        try:
            await admin.close()
        except Exception as exc:  # closing a client that never connected
            log.debug("admin client close: %s", exc)
    return _retentions(responses)


def _retentions(responses: Iterable[object]) -> dict[str, timedelta]:
    found: dict[str, timedelta] = {}
    for response in responses:
        for resource in getattr(response, "resources", ()):
            _error, _message, _kind, name, entries = resource[:5]
            for entry in entries:
                if entry[0] == "retention.ms" and entry[1] is not None:
                    millis = int(entry[1])
                    found[name] = FOREVER if millis < 0 else timedelta(milliseconds=millis)
    return found


class ProcessedEventsPruner:
    """Deletes processed-event ids older than `retention`, in batches, every `interval` s."""

    def __init__(
        self,
        engine: AsyncEngine,
        retention: timedelta,
        clock: Clock,
        *,
        interval: float = 300.0,
        batch: int = 5000,
        check: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.retention = retention
        self.clock = clock
        self.interval = interval
        self.batch = batch
        self._check = check
        self._stopping = asyncio.Event()  # also ends a pass between batches
        self._job = PeriodicJob("dedupe-pruner", self.prune_once, interval, before_first_tick=check)

    def cutoff(self) -> datetime:
        """Ids processed before this instant can no longer meet a duplicate."""
        return self.clock() - self.retention

    async def prune_batch(self, cutoff: datetime) -> int:
        """Delete up to `batch` ids processed before `cutoff`; how many were deleted."""
        due = (
            sa.select(processed_events.c.event_id)
            .where(processed_events.c.processed_at < cutoff)
            .order_by(processed_events.c.processed_at)
            .limit(self.batch)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.delete(processed_events).where(processed_events.c.event_id.in_(due))
            )
        return int(result.rowcount or 0)

    async def prune_once(self) -> int:
        """Delete every id past the retention, batch by batch; how many were deleted."""
        cutoff = self.cutoff()
        total = 0
        while not self._stopping.is_set():
            deleted = await self.prune_batch(cutoff)
            total += deleted
            if deleted < self.batch:
                break
        if total:
            log.info("pruned %d processed event ids older than %s", total, cutoff.isoformat())
        return total

    async def run(self) -> None:
        """Check the retention against the topics, then prune every `interval` until stopped."""
        await self._job.run()

    def stop(self) -> None:
        self._stopping.set()
        self._job.stop()


def named_topics(settings: ServiceSettings) -> list[str]:
    """Every topic a service's settings name (`*_topic` fields): the ones it consumes among
    them. Checking them all is conservative: an output topic kept longer also counts."""
    fields: dict[str, object] = settings.model_dump()
    return sorted({v for k, v in fields.items() if k.endswith("_topic") and isinstance(v, str)})


def pruner_for(
    engine: AsyncEngine,
    settings: ServiceSettings,
    bootstrap_servers: str,
    clock: Clock,
) -> ProcessedEventsPruner:
    """The pruner a service runs, from its `dedupe_*` settings, checked against its topics."""
    retention = timedelta(hours=settings.dedupe_retention_hours)

    async def check() -> None:
        topics = named_topics(settings)
        check_retention(retention, await topic_retentions(bootstrap_servers, topics))

    return ProcessedEventsPruner(
        engine,
        retention,
        clock,
        interval=settings.dedupe_prune_interval_seconds,
        batch=settings.dedupe_prune_batch,
        check=check,
    )
