"""A request asks nothing of OpenTelemetry: nothing in the project configures it (the
services export Prometheus metrics), and FastAPI's native telemetry hook, left on, asked
OpenTelemetry's global providers on every request (`shared.http.app`)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from opentelemetry import metrics, trace

from shared.http import create_service_app
from shared.settings import ServiceSettings

URL = "postgresql://nobody@localhost/none"  # serving /healthz opens nothing


async def test_serving_a_request_asks_no_opentelemetry_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    def provider(name: str, real: Any) -> Any:
        def ask(*args: Any, **kwargs: Any) -> Any:
            asked.append(name)
            return real(*args, **kwargs)

        return ask

    monkeypatch.setattr(trace, "get_tracer_provider", provider("tracer", trace.get_tracer_provider))
    monkeypatch.setattr(
        metrics, "get_meter_provider", provider("meter", metrics.get_meter_provider)
    )
    app = create_service_app(
        "telemetry-test", ServiceSettings(database_url=URL, consumer_group="telemetry-test")
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        for _ in range(3):
            assert (await client.get("/healthz")).status_code == 200
    assert asked == [], f"OpenTelemetry asked per request: {asked}"
