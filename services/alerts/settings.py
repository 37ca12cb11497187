"""Configuration of the alerts service, from ALERTS_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.alerts.clock.service import ClockMode
from shared.contracts.topics import Topics
from shared.settings import ServiceSettings


class AlertsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALERTS_", extra="ignore")

    consumer_group: str = "alerts"
    http_port: int = 8003
    clock: ClockMode = Field(
        default=ClockMode.WALL,
        description="wall: real time; event: the latest occurred_at seen (demo, replays).",
    )
    run_workers: bool = Field(
        default=True,
        description="Start the consumer, outbox relay, scanner and periodic jobs with the app;"
        " false serves HTTP only (tests, or an API-only replica).",
    )
    purchases_topic: str = Topics.POS_PURCHASES
    points_topic: str = Topics.POINTS
    rewards_topic: str = Topics.REWARDS
    alerts_topic: str = Topics.ALERTS
    scan_batch: int = Field(default=500, ge=1, le=50_000)
    scan_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    model_refit_interval_seconds: float = Field(default=86_400.0, gt=0)
    segment_refresh_interval_seconds: float = Field(default=3_600.0, gt=0)
    reschedule_poll_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often a worker looks for a fit whose lapse checks are not yet moved"
        " to it (a refit on this instance wakes it at once).",
    )
    open_alerts_gauge_interval_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How often `loyalty_alerts_open` is recounted (one small query).",
    )

    @property
    def consumed_topics(self) -> list[str]:
        """Purchases and returns, points events (tiers), rewards events."""
        return [self.purchases_topic, self.points_topic, self.rewards_topic]
