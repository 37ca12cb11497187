"""Generated parts of the README: the event catalogue and the HTTP API overview.

    python -m tooling.docs            rewrite the generated sections of README.md
    python -m tooling.docs --check    exit 1 if README.md is out of date (a test runs this)

The event catalogue comes from the same pydantic models the JSON Schemas in
docs/schemas/ are exported from; the API overview from each service's OpenAPI
document. Each section lives between `<!-- generated:NAME -->` and
`<!-- /generated:NAME -->` markers, so the prose around it stays hand-written.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from shared.contracts.registry import EVENT_MODELS

README = Path(__file__).resolve().parent.parent / "README.md"
_HTTP_METHODS = ("get", "post", "put", "patch", "delete")
# A database URL the apps are built with; nothing connects to it (workers are off).
_NOWHERE = "postgresql://docs@127.0.0.1:1/docs"


def _first_sentence(text: str | None) -> str:
    if not text:
        return ""
    line = " ".join(text.strip().split())
    match = re.match(r"(.+?\.)(\s|$)", line)
    return (match.group(1) if match else line).replace("|", "\\|")


def _data_fields(schema: Mapping[str, Any]) -> str:
    data = schema.get("properties", {}).get("data", {})
    ref = data.get("$ref") or next(
        (item.get("$ref") for item in data.get("allOf", []) if "$ref" in item), None
    )
    if ref:
        data = schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {})
    required = set(data.get("required", []))
    fields = data.get("properties", {})
    return ", ".join(f"`{name}`" + ("" if name in required else "?") for name in fields)


def event_catalogue() -> str:
    """One row per registered event: type, version, what it means, its data fields."""
    rows = [
        "| event | v | meaning | `data` fields (`?` optional) | schema |",
        "|---|---|---|---|---|",
    ]
    for (event_type, version), model in sorted(EVENT_MODELS.items()):
        schema = model.model_json_schema(mode="validation")
        link = f"[json](docs/schemas/{event_type}.v{version}.json)"
        meaning = _first_sentence(model.__doc__)
        rows.append(f"| `{event_type}` | {version} | {meaning} | {_data_fields(schema)} | {link} |")
    return "\n".join(rows)


def _service_apps() -> dict[str, Callable[[], FastAPI]]:
    from services.alerts.app import build_app as alerts_app
    from services.alerts.settings import AlertsSettings
    from services.points.app import build_app as points_app
    from services.points.settings import PointsSettings
    from services.rewards.app import build_app as rewards_app
    from services.rewards.settings import RewardsSettings

    return {
        "points": lambda: points_app(PointsSettings(database_url=_NOWHERE, run_workers=False)),
        "rewards": lambda: rewards_app(RewardsSettings(database_url=_NOWHERE, run_workers=False)),
        "alerts": lambda: alerts_app(AlertsSettings(database_url=_NOWHERE, run_workers=False)),
    }


def _operations(openapi: Mapping[str, Any]) -> Iterable[tuple[str, str, str]]:
    for path, item in openapi.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for method in _HTTP_METHODS:
            operation = item.get(method)
            if operation is not None:
                summary = operation.get("summary") or operation.get("operationId", "")
                yield method.upper(), path, _first_sentence(summary)


def api_overview() -> str:
    """Every `/v1` route of every service, from its OpenAPI document."""
    rows = ["| service | method | path | what it does |", "|---|---|---|---|"]
    for service, build in _service_apps().items():
        for method, path, summary in sorted(_operations(build().openapi()), key=lambda r: r[1]):
            rows.append(f"| {service} | {method} | `{path}` | {summary} |")
    return "\n".join(rows)


SECTIONS: dict[str, Callable[[], str]] = {"events": event_catalogue, "api": api_overview}


def render(readme: str) -> str:
    """`readme` with every generated section replaced by its current content."""
    for name, build in SECTIONS.items():
        begin, end = f"<!-- generated:{name} -->\n", f"<!-- /generated:{name} -->"
        start, stop = readme.find(begin), readme.find(end)
        if start < 0 or stop < start:
            raise ValueError(f"README.md has no {begin.strip()} ... {end} section")
        readme = readme[: start + len(begin)] + build() + "\n" + readme[stop:]
    return readme


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    current = README.read_text(encoding="utf-8")
    wanted = render(current)
    if "--check" in args:
        if wanted != current:
            print("README.md is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
