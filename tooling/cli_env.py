"""Where the operator's tools find the platform: flags, then the environment, then var/.

`make run` (tooling.run) and `python -m tooling.devinfra up` write what they started into
the state directory (./var, or $LOYALTY_VAR_DIR): `env` (export lines: the broker and
every database) and `services.json` (each service's URL and local admin key). The CLI
reads them when neither a flag nor an environment variable names an address, so after
`make run` every `loyalty ...` command works with no configuration.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.settings import KafkaSettings, asyncpg_url


class CommandError(Exception):
    """A problem the operator can fix; printed without a traceback."""


DEFAULT_SERVICE_URLS = {
    "points": "http://127.0.0.1:8001",
    "rewards": "http://127.0.0.1:8002",
    "alerts": "http://127.0.0.1:8003",
}


def var_dir() -> Path:
    return Path(os.environ.get("LOYALTY_VAR_DIR", "var"))


def from_env_file(name: str) -> str | None:
    """The value `name` is exported with in <var>/env, if any."""
    env_file = var_dir() / "env"
    if not env_file.is_file():
        return None
    for line in env_file.read_text().splitlines():
        key, sep, value = line.removeprefix("export ").partition("=")
        if sep and key.strip() == name:
            return value.strip().strip("'\"")
    return None


def bootstrap_servers(explicit: str | None = None) -> str:
    """The broker: the flag, else KAFKA_BOOTSTRAP_SERVERS, else var/env, else the default."""
    name = "KAFKA_BOOTSTRAP_SERVERS"
    return (
        explicit
        or os.environ.get(name)
        or from_env_file(name)
        or KafkaSettings.model_fields["bootstrap_servers"].get_default()
    )


@dataclass(frozen=True)
class ServiceEndpoint:
    """A running service as the CLI reaches it."""

    name: str
    url: str
    admin_key: str | None


def _services_file() -> dict[str, Any]:
    path = var_dir() / "services.json"
    if not path.is_file():
        return {}
    loaded = json.loads(path.read_text())
    return loaded if isinstance(loaded, dict) else {}


def service_endpoint(name: str) -> ServiceEndpoint:
    """URL from `<NAME>_URL` or services.json or the convention; key from
    `<NAME>_ADMIN_KEY` or services.json."""
    recorded = _services_file().get(name, {})
    prefix = name.upper()
    url = os.environ.get(f"{prefix}_URL") or recorded.get("url") or DEFAULT_SERVICE_URLS[name]
    key = os.environ.get(f"{prefix}_ADMIN_KEY") or recorded.get("admin_key")
    return ServiceEndpoint(name, str(url).rstrip("/"), key)


def database_url(service: str, explicit: str | None) -> str:
    """The service's database: the flag, else its environment variable, else var/env."""
    name = f"{service.upper()}_DATABASE_URL"
    url = explicit or os.environ.get(name) or from_env_file(name)
    if not url:
        raise CommandError(
            f"no database for {service}: pass --database-url, set {name}, "
            "or start the embedded stack with `python -m tooling.devinfra up`"
        )
    return asyncpg_url(url)
