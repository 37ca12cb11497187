"""Every service's OpenAPI declares the errors its routes can answer, as problem+json."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from services.alerts.app import build_app as alerts_app
from services.alerts.settings import AlertsSettings
from services.points.app import build_app as points_app
from services.points.settings import PointsSettings
from services.rewards.app import build_app as rewards_app
from services.rewards.settings import RewardsSettings
from shared.http import PROBLEM_JSON

URL = "postgresql://nobody@localhost/none"  # building the app opens nothing


def _apps() -> dict[str, FastAPI]:
    return {
        "points": points_app(PointsSettings(database_url=URL, run_workers=False)),
        "rewards": rewards_app(RewardsSettings(database_url=URL, run_workers=False)),
        "alerts": alerts_app(AlertsSettings(database_url=URL, run_workers=False)),
    }


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
    ]


def _declares(operation: dict[str, Any], status: int) -> bool:
    response = operation["responses"].get(str(status))
    if response is None:
        return False
    schema = response["content"][PROBLEM_JSON]["schema"]
    return bool(schema == {"$ref": "#/components/schemas/Problem"})


@pytest.mark.parametrize("name", ["points", "rewards", "alerts"])
def test_each_operation_declares_its_problem_responses(name: str) -> None:
    app = _apps()[name]
    schema = app.openapi()
    assert "Problem" in schema["components"]["schemas"]
    assert "HTTPValidationError" not in schema["components"]["schemas"], "never sent"
    secured = 0
    for method, path, operation in _operations(app):
        where = f"{name} {method.upper()} {path}"
        if operation.get("security"):
            secured += 1
            for status in (401, 403, 429):
                assert _declares(operation, status), f"{where} does not declare {status}"
        if operation.get("requestBody"):
            for status in (413, 422):
                assert _declares(operation, status), f"{where} does not declare {status}"
        if "{" in path:
            assert _declares(operation, 404), f"{where} does not declare 404"
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == [PROBLEM_JSON], f"{where} {status}"
    assert secured >= 8, f"{name}: the partner and admin routes are secured"
