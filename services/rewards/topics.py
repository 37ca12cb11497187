"""Where the rewards service writes, so tests can point a stack at private topics."""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts.topics import Topics


@dataclass(frozen=True)
class RewardsTopics:
    """Outgoing topics: facts and commands on `rewards`, escalations on `ops`."""

    rewards: str = Topics.REWARDS
    ops: str = Topics.SERVICE_INCIDENTS
