"""Every service's OpenAPI declares the errors its routes can answer, as problem+json.

FastAPI documents only the success and its own 422 (with a schema we never send). The
chassis knows which errors each route can produce from the route's shape alone, so it
declares them once for every service, each `application/problem+json` with the
`Problem` schema:
- every route: 429 (rate limits, shared.http.gate); one that needs an API key: 401, 403;
- a route with parameters or a body: 422 (validation, and the NUL rule of the gate);
- a route with a body: 413 (body over the limit); a write (POST, PUT, PATCH, DELETE):
  409 (a conflict with the current state);
- a route with a path parameter: 404 (what it names does not exist);
- `/healthz` and `/readyz`: 503 (not live or not ready).
Statuses a route declares itself keep their description but get the problem content.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from shared.http.problem import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An error (RFC 9457); branch on `code`, show `detail`.",
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string", "description": "urn:loyalty:problem:<code>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "stable, machine-readable"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "422: one entry per failing field",
            "items": {
                "type": "object",
                "required": ["field", "rule", "message"],
                "properties": {
                    "field": {"type": "string"},
                    "rule": {"type": "string"},
                    "message": {"type": "string"},
                    "params": {"type": "object"},
                },
            },
        },
    },
    "additionalProperties": True,
}

_DESCRIPTIONS = {
    401: "The API key is missing, wrong or revoked",
    403: "The API key lacks the scope, or is bound to another merchant",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "The request body is over the size limit",
    422: "A field breaks a rule (named in `errors`)",
    429: "Too many requests (see `Retry-After`)",
    503: "Not live or not ready (names what failed)",
}
_WRITES = frozenset({"post", "put", "patch", "delete"})
_PROBES = frozenset({"/healthz", "/readyz"})


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    statuses = {429}  # every route: per key, or per client address without one
    if operation.get("security"):
        statuses |= {401, 403}
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(422)
    if operation.get("requestBody"):
        statuses.add(413)
    if method in _WRITES:
        statuses.add(409)
    if "{" in path:
        statuses.add(404)
    if path in _PROBES:
        statuses.add(503)
    return statuses


def declare_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the Problem schema and each operation's error responses to `schema` (in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            declared = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
            for status in sorted(_statuses(path, method, operation) | declared):
                entry = responses.setdefault(str(status), {"description": _DESCRIPTIONS[status]})
                entry["content"] = content
    return schema


def install_problem_responses(app: FastAPI) -> None:
    """Make `app.openapi()` return the schema with the error responses declared."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = declare_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
