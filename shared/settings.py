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
    """Base of each service's settings class (which adds its fields and its env prefix)."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str
    consumer_group: str
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    max_batch: int = Field(default=2000, ge=1, le=50_000)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    outbox_batch: int = Field(default=2000, ge=1, le=50_000)
    environment: str = Field(default="development", pattern="^(development|test|production)$")
    # HTTP limits (shared.http.gate). Rates are requests per second per API key (per client
    # address for failed authentications) and per instance: N instances admit N times as many.
    rate_read_per_second: float = Field(default=1000.0, gt=0)
    rate_read_burst: int = Field(default=2000, ge=1)
    rate_write_per_second: float = Field(default=200.0, gt=0)
    rate_write_burst: int = Field(default=400, ge=1)
    rate_admin_per_second: float = Field(default=20.0, gt=0)
    rate_admin_burst: int = Field(default=100, ge=1)
    rate_auth_failure_per_second: float = Field(default=1.0, gt=0)
    rate_auth_failure_burst: int = Field(default=30, ge=1)
    rate_anonymous_per_second: float = Field(default=50.0, gt=0)  # probes, docs, per address
    rate_anonymous_burst: int = Field(default=200, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Unknown codes (shared.http.guessing): this many misses within the window lock the key
    # out of code look-ups for the lockout.
    unknown_code_limit: int = Field(default=10, ge=1)
    unknown_code_window_seconds: float = Field(default=600.0, gt=0)
    unknown_code_lockout_seconds: float = Field(default=900.0, gt=0)
    # processed_events retention (shared.kafka.dedupe): an event id is kept this long, so a
    # duplicate arriving within it is still skipped. At least the consumed topics' retention.
    dedupe_retention_hours: float = Field(default=192.0, ge=1)
    dedupe_prune_interval_seconds: float = Field(default=300.0, gt=0)
    dedupe_prune_batch: int = Field(default=5000, ge=1, le=100_000)

    @field_validator("database_url")
    @classmethod
    def _asyncpg(cls, value: str) -> str:
        return asyncpg_url(value)
