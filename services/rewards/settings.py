"""Settings of the rewards service, from REWARDS_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.contracts.topics import Topics
from shared.settings import ServiceSettings


class RewardsSettings(ServiceSettings):
    """REWARDS_DATABASE_URL is required; everything else has a working default."""

    model_config = SettingsConfigDict(env_prefix="REWARDS_", extra="ignore")

    consumer_group: str = "rewards"
    http_port: int = 8002
    points_topic: str = Topics.POINTS
    incidents_topic: str = Topics.SERVICE_INCIDENTS
    purchases_topic: str = Topics.POS_PURCHASES  # the order record compensation is paid on
    rewards_topic: str = Topics.REWARDS
    ops_topic: str = Topics.SERVICE_INCIDENTS  # claim.escalated goes to operations
    run_workers: bool = True
    # How long the broker may hold the consumer's fetch when no record is waiting. aiokafka's
    # 500 ms is a throughput default; Tansu does not answer a waiting fetch when a record
    # arrives, so a record waited 130 ms at the median (250 ms at worst) before a consumer
    # saw it; with 50 ms, 19 ms (32 at worst); 20 ms saves a few more but costs 2.5 times the
    # idle fetch requests, CPU the consumer shares. Kafka answers as soon as a record
    # arrives either way.
    fetch_max_wait_ms: int = Field(default=50, ge=1, le=10_000)
    jobs_interval_seconds: float = Field(default=30.0, gt=0, le=86_400)
    jobs_batch: int = Field(default=500, ge=1, le=50_000)
    claim_wait_seconds: float = Field(default=2.0, ge=0, le=30)
    default_voucher_days: int = Field(default=30, ge=1, le=3650)
    # A catalogue claim the points service has not answered in this long is cancelled and
    # its debit reversed (see services/rewards/claims/service.py).
    claim_timeout_seconds: float = Field(default=300.0, ge=5, le=7 * 86_400)

    @property
    def claim_timeout(self) -> timedelta:
        return timedelta(seconds=self.claim_timeout_seconds)


@dataclass(frozen=True)
class RewardsTopics:
    """Outgoing topics: facts and commands on `rewards`, escalations on `ops`."""

    rewards: str = Topics.REWARDS
    ops: str = Topics.SERVICE_INCIDENTS
