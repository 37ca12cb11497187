"""Every rewards route documents its response body, and every list its paging."""

from __future__ import annotations

from typing import Any

from services.rewards.app import build_app
from services.rewards.settings import RewardsSettings

URL = "postgresql://nobody@localhost/none"  # building the app opens nothing


def _openapi() -> dict[str, Any]:
    return build_app(RewardsSettings(database_url=URL, run_workers=False)).openapi()


def _schema_of(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return dict(spec["components"]["schemas"][ref.rsplit("/", 1)[-1]])


def _success(operation: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (status, response)
        for status, response in operation["responses"].items()
        if status.startswith("2")
    ]


def test_every_rewards_route_declares_a_typed_response_body() -> None:
    spec = _openapi()
    untyped = []
    for path, item in spec["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method, operation in item.items():
            for status, response in _success(operation):
                content = response.get("content", {}).get("application/json", {})
                schema = _schema_of(spec, content.get("schema", {}))
                if not schema.get("properties"):
                    untyped.append(f"{method.upper()} {path} {status}")
    assert not untyped, f"responses without a documented body: {untyped}"


def test_every_list_route_takes_limit_and_cursor_and_answers_next_cursor() -> None:
    spec = _openapi()
    lists = {
        "/v1/catalogue",
        "/v1/customers/{customer_id}/rewards",
        "/v1/admin/catalogue",
        "/v1/admin/policies",
        "/v1/admin/milestone-rules",
        "/v1/admin/reviews",
        "/v1/admin/reports/overdue-claims",
        "/v1/admin/reward-definitions",
        "/v1/admin/reports/budgets",
    }
    for path in sorted(lists):
        operation = spec["paths"][path]["get"]
        names = {p["name"] for p in operation.get("parameters", [])}
        assert {"limit", "cursor"} <= names, f"{path} pages by limit and cursor"
        body = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert "next_cursor" in _schema_of(spec, body)["properties"], f"{path} says what is next"
    for path, item in spec["paths"].items():
        get = item.get("get")
        if get is None or path in lists or not path.startswith("/v1"):
            continue
        body = get["responses"]["200"]["content"]["application/json"]["schema"]
        arrays = [
            name
            for name, field in _schema_of(spec, body).get("properties", {}).items()
            if field.get("type") == "array"
        ]
        assert arrays in ([], ["checked", "violations", "truncated"]), (
            f"{path} returns a list ({arrays}) without paging"
        )
