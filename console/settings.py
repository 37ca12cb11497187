"""Where the console listens and where it finds the services (env prefix `CONSOLE_`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tooling.cli_env import DEFAULT_SERVICE_URLS


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    points_url: str = DEFAULT_SERVICE_URLS["points"]
    rewards_url: str = DEFAULT_SERVICE_URLS["rewards"]
    alerts_url: str = DEFAULT_SERVICE_URLS["alerts"]
    # Signs the session cookie. Unset: a random secret per process (sessions end on restart).
    session_secret: SecretStr | None = None
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    # Cookies only over HTTPS; turn on behind a TLS-terminating proxy.
    secure_cookies: bool = False
    service_timeout_seconds: float = Field(default=10.0, gt=0)

    def service_urls(self) -> dict[str, str]:
        return {
            "points": self.points_url.rstrip("/"),
            "rewards": self.rewards_url.rstrip("/"),
            "alerts": self.alerts_url.rstrip("/"),
        }
