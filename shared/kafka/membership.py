"""How a service instance belongs to its consumer group: the settings chosen on purpose.

Read from the environment (all optional):

    KAFKA_GROUP_INSTANCE_ID       static membership (KIP-345). Set it to a name stable
                                  across restarts and unique within the group (a
                                  StatefulSet pod name, a compose replica's hostname).
                                  A restarted instance with the same name gets its
                                  partitions back at once, without a rebalance of the
                                  others; an instance that never returns keeps its
                                  partitions until the session times out. Unset (the
                                  default): dynamic membership, and an orderly stop
                                  leaves the group at once.
    KAFKA_SESSION_TIMEOUT_MS      10000: how long a silent (crashed) member keeps its
                                  partitions. Apache Kafka accepts 6000-300000
                                  (group.min/max.session.timeout.ms).
    KAFKA_HEARTBEAT_INTERVAL_MS   1000: members learn of a rebalance from a heartbeat
                                  answer, so this bounds how long the others take to
                                  notice that a member joined or left.
    KAFKA_REBALANCE_TIMEOUT_MS    60000: how long the coordinator waits for members to
                                  rejoin; a member rejoins after committing the batch in
                                  flight (at most `max_batch` events, seconds at worst).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class GroupMembership:
    instance_id: str | None = None
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    rebalance_timeout_ms: int = 60_000

    def __post_init__(self) -> None:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(
                "KAFKA_HEARTBEAT_INTERVAL_MS must be at most a third of KAFKA_SESSION_TIMEOUT_MS "
                f"(got {self.heartbeat_interval_ms} and {self.session_timeout_ms})"
            )

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> GroupMembership:
        source = os.environ if env is None else env
        defaults = cls()

        def number(name: str, default: int) -> int:
            raw = source.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{name} must be a whole number of milliseconds") from None
            if value <= 0:
                raise ValueError(f"{name} must be positive")
            return value

        return cls(
            instance_id=source.get("KAFKA_GROUP_INSTANCE_ID") or None,
            session_timeout_ms=number("KAFKA_SESSION_TIMEOUT_MS", defaults.session_timeout_ms),
            heartbeat_interval_ms=number(
                "KAFKA_HEARTBEAT_INTERVAL_MS", defaults.heartbeat_interval_ms
            ),
            rebalance_timeout_ms=number(
                "KAFKA_REBALANCE_TIMEOUT_MS", defaults.rebalance_timeout_ms
            ),
        )

    def for_member(self, member: int) -> GroupMembership:
        """The membership of a process's `member`-th consumer of one group (0-based): a
        static id must be unique within the group, so members after the first add their
        number to it (`pod-a`, then `pod-a/member-1`); the first keeps it as set, and a
        restarted single-member instance keeps its partitions."""
        if member == 0 or not self.instance_id:
            return self
        return replace(self, instance_id=f"{self.instance_id}/member-{member}")

    def consumer_options(self, group_id: str) -> dict[str, Any]:
        """aiokafka keyword arguments; a static member's id names its group too, so one
        process consuming as two groups never presents the same id twice."""
        options: dict[str, Any] = {
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "rebalance_timeout_ms": self.rebalance_timeout_ms,
        }
        if self.instance_id:
            options["group_instance_id"] = f"{group_id}:{self.instance_id}"
        return options
