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
    jobs_interval_seconds: float = Field(default=60.0, gt=0, le=86_400)
    expiry_batch: int = Field(default=500, ge=1, le=50_000)
    review_batch: int = Field(default=200, ge=1, le=50_000)
