"""Every HTTP error as `application/problem+json` (RFC 9457) with a stable `code`.

Clients branch on `code` (machine-readable, never reworded) and show `detail`
(human-readable). `type` is a URN built from the code, so it is stable too.
Four sources of errors, one shape:
- `DomainError` raised anywhere below the routes: its status, code and extra fields;
- request validation (422): one entry per failing field, naming the field and the rule;
- HTTP exceptions from the framework (unknown route 404, wrong method 405, ...);
- anything else: 500, logged with the request, and nothing internal in the body.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import DomainError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
BEARER_CHALLENGE = 'Bearer realm="loyalty"'
_RESERVED = frozenset({"type", "title", "status", "detail", "code", "instance"})
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def problem_type(code: str) -> str:
    return f"urn:loyalty:problem:{code}"


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(
    status: int,
    code: str,
    *,
    title: str | None = None,
    detail: str | None = None,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem document; extra fields never overwrite the standard members."""
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title or _title(status),
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    for name, value in (extra or {}).items():
        if name not in _RESERVED:
            body[name] = jsonable_encoder(value)
    return body


def problem_response(
    status: int,
    code: str,
    *,
    title: str | None = None,
    detail: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response; a 401 always carries the Bearer challenge (RFC 9110 §15.5.2)."""
    body = problem_body(status, code, title=title, detail=detail, instance=instance, extra=extra)
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", BEARER_CHALLENGE)
    return JSONResponse(body, status_code=status, headers=all_headers, media_type=PROBLEM_JSON)


def _field(location: Sequence[Any]) -> str:
    return ".".join(str(part) for part in location)


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def validation_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's errors as `{field, rule, message[, params]}`; the input is not echoed back."""
    rendered = []
    for error in errors:
        entry: dict[str, Any] = {
            "field": _field(error.get("loc", ())),
            "rule": str(error.get("type", "invalid")),
            "message": str(error.get("msg", "is not valid")),
        }
        context = error.get("ctx")
        if context:
            entry["params"] = {name: _plain(value) for name, value in context.items()}
        rendered.append(entry)
    return rendered


def domain_problem(exc: DomainError, instance: str) -> JSONResponse:
    """The problem document of a refused request (`instance`: the request's path)."""
    return problem_response(
        exc.status,
        exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=instance,
        headers=exc.headers,
        **exc.extra,
    )


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return domain_problem(exc, request.url.path)


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    fields = ", ".join(dict.fromkeys(error["field"] for error in errors))
    return problem_response(
        422,
        "validation_failed",
        title="The request is not valid",
        detail=f"invalid: {fields}" if fields else None,
        instance=request.url.path,
        errors=errors,
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == _title(exc.status_code):
        detail = None  # Starlette's default detail only repeats the title
    return problem_response(
        exc.status_code,
        code,
        detail=detail,
        instance=request.url.path,
        headers=exc.headers,
    )


class ProblemOnCrash:
    """Innermost safety net: an unhandled exception becomes a logged, opaque 500 problem.

    A pure ASGI middleware rather than an `Exception` handler: Starlette re-raises
    after calling such a handler, so the server would log the crash a second time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            incident = uuid.uuid4().hex
            log.exception(
                "unhandled error %s on %s %s", incident, scope.get("method"), scope.get("path")
            )
            if started:
                raise  # headers already sent: nothing sane to add
            response = problem_response(
                500,
                "internal_error",
                detail="An unexpected error occurred; it has been logged.",
                instance=str(scope.get("path", "")),
                incident=incident,
            )
            await response(scope, receive, send)


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers and the crash net on `app`."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_middleware(ProblemOnCrash)
