"""Settings shared by every service; each service subclasses with its own env prefix."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def asyncpg_url(url: str) -> str:
    """Accept plain `postgresql://` URLs from operators and use the asyncpg driver."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


class KafkaSettings(BaseSettings):
    """Where the broker is; read from KAFKA_* variables."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = Field(default="127.0.0.1:19092")
    client_id_prefix: str = "loyalty"
    default_partitions: int = Field(default=8, ge=1, le=1024)
    # The outbox relay's producer: `auto` is idempotent where the broker grants producer
    # ids (Apache Kafka), plain acks=all where it does not (Tansu); `on` insists.
    idempotence: str = Field(default="auto", pattern="^(auto|on|off)$")


class ServiceSettings(BaseSettings):
    """Base for POINTS_*, REWARDS_*, ALERTS_* settings."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str
    consumer_group: str
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    max_batch: int = Field(default=2000, ge=1, le=50_000)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    outbox_batch: int = Field(default=2000, ge=1, le=50_000)
    environment: str = Field(default="development", pattern="^(development|test|production)$")

    @field_validator("database_url")
    @classmethod
    def _asyncpg(cls, value: str) -> str:
        return asyncpg_url(value)
