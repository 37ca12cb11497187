"""Start to first applied batch of a consumer run, split where the time goes.

A `StartupTimeline` watches one `EventConsumer` of the benchmark (never the service's
code): it wraps that consumer's own aiokafka client `send` and `start` on the instance,
so every request the client sends until the first batch is applied is recorded with
the time it was sent and answered. From those marks:

    client start   run() called -> the group's first request (FindCoordinator): the
                   runtime's garbage-collector freeze, bootstrap and topic metadata
    group join     FindCoordinator, JoinGroup and SyncGroup, until the client's start()
                   returns with partitions assigned (a broker that holds the JoinGroup
                   answer, e.g. Apache Kafka's group.initial.rebalance.delay.ms, shows
                   here as a long JoinGroup round trip)
    waiting for input  only where the benchmark publishes its input after the join
                   (rewards): assigned -> the first input published
    first fetch    assigned (or the first input published) -> the first records handed to
                   the runtime (OffsetFetch, ListOffsets, Fetch)
    first apply    first records -> that batch committed to PostgreSQL and its offsets
                   to the broker

Only perf_counter marks and request names are kept, and recording stops at the first
applied batch, so the watch costs nothing measurable in the steady state.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

GROUP_REQUESTS = ("FindCoordinator", "JoinGroup", "SyncGroup")
FETCH_REQUESTS = ("OffsetFetch", "Offset", "ListOffsets", "Fetch")  # aiokafka: OffsetRequest
_VERSION = re.compile(r"(Request|Response)?(_v\d+)?$")


def request_name(request: Any) -> str:
    """'JoinGroup' for aiokafka's JoinGroupRequest, JoinGroupRequest_v5, ..."""
    return _VERSION.sub("", type(request).__name__)


@dataclass(frozen=True)
class Request:
    name: str
    sent: float
    answered: float

    @property
    def seconds(self) -> float:
        return self.answered - self.sent


@dataclass
class StartupTimeline:
    """perf_counter marks of one consumer's start, until its first applied batch."""

    broker: str
    now: Callable[[], float] = time.perf_counter
    started: float | None = None  # run() called
    client_started: float | None = None  # aiokafka's start() returned: partitions assigned
    first_records: float | None = None  # the first batch reached the runtime
    first_applied: float | None = None  # that batch committed (database and offsets)
    input_from: float | None = None  # the first input published, if after the start
    requests: list[Request] = field(default_factory=list)

    # -- recording ---------------------------------------------------------
    def watch(self, kafka_consumer: Any) -> None:
        """Record `kafka_consumer`'s requests and start (an AIOKafkaConsumer, not started)."""
        client = kafka_consumer._client
        send, start = client.send, kafka_consumer.start

        async def timed_send(node_id: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            if self.first_applied is not None:
                return await send(node_id, request, *args, **kwargs)
            sent = self.now()
            try:
                return await send(node_id, request, *args, **kwargs)
            finally:
                if self.first_applied is None:
                    self.requests.append(Request(request_name(request), sent, self.now()))

        async def timed_start() -> None:
            await start()
            self.client_started = self.now()

        client.send = timed_send
        kafka_consumer.start = timed_start

    def start(self) -> None:
        self.started = self.now()

    def input_published(self) -> None:
        if self.input_from is None:
            self.input_from = self.now()

    def batch_received(self) -> None:
        if self.first_records is None:
            self.first_records = self.now()

    def batch_applied(self) -> None:
        if self.first_applied is None:
            self.first_applied = self.now()

    # -- reading -----------------------------------------------------------
    @property
    def complete(self) -> bool:
        return None not in (
            self.started,
            self.client_started,
            self.first_records,
            self.first_applied,
        )

    def total_s(self) -> float | None:
        if self.started is None or self.first_applied is None:
            return None
        return self.first_applied - self.started

    def split(self) -> dict[str, float]:
        """Seconds of each part of the start (empty until the first batch was applied)."""
        if not self.complete:
            return {}
        assert self.started is not None and self.client_started is not None
        assert self.first_records is not None and self.first_applied is not None
        group = [r for r in self.requests if r.name in GROUP_REQUESTS]
        joined_from = group[0].sent if group else self.client_started
        joined_from = min(max(joined_from, self.started), self.client_started)
        parts = {
            "client start": joined_from - self.started,
            "group join": self.client_started - joined_from,
        }
        fetch_from = self.client_started
        if self.input_from is not None:
            fetch_from = min(max(self.input_from, self.client_started), self.first_records)
            parts["waiting for input"] = fetch_from - self.client_started
        parts["first fetch"] = self.first_records - fetch_from
        parts["first apply"] = self.first_applied - self.first_records
        return parts

    def round_trips(self, names: tuple[str, ...]) -> dict[str, tuple[int, float]]:
        """name -> (requests sent, seconds waiting for answers), in first-sent order,
        of the requests before the first records arrived."""
        end = self.first_records if self.first_records is not None else float("inf")
        found: dict[str, tuple[int, float]] = {}
        for r in self.requests:
            if r.name in names and r.sent <= end:
                count, seconds = found.get(r.name, (0, 0.0))
                found[r.name] = (count + 1, seconds + r.seconds)
        return found

    def line(self, what: str) -> str:
        """One printed line: the total and its split, with the group's round trips."""
        total = self.total_s()
        if total is None or not self.complete:
            return f"start to first applied batch ({self.broker}), {what}: no batch applied"
        parts = ", ".join(f"{name} {seconds:.2f}" for name, seconds in self.split().items())
        trips = "; ".join(
            f"{name} {count}x {seconds:.2f}"
            for name, (count, seconds) in self.round_trips(GROUP_REQUESTS + FETCH_REQUESTS).items()
        )
        return (
            f"start to first applied batch ({self.broker}), {what}: {total:.2f} s"
            f" = {parts} s (round trips: {trips or 'none seen'})"
        )

    def figures(self, prefix: str) -> dict[str, Any]:
        """`{prefix}startup_s` and `{prefix}startup.<part>_s` for bench-results.json."""
        total = self.total_s()
        figures: dict[str, Any] = {
            f"{prefix}startup_s": round(total, 3) if total is not None else None,
            f"{prefix}startup_broker": self.broker,
        }
        for name, seconds in self.split().items():
            figures[f"{prefix}startup.{name.replace(' ', '_')}_s"] = round(seconds, 3)
        for name, (count, seconds) in self.round_trips(GROUP_REQUESTS + FETCH_REQUESTS).items():
            figures[f"{prefix}startup.{name}_requests"] = count
            figures[f"{prefix}startup.{name}_s"] = round(seconds, 3)
        return figures
