"""The gate every request passes before a route sees it: who, how often, how big, how clean.

In this order, each refusal a problem+json document:
1. the API key, when the matched route requires one (`shared.http.security.require`):
   401 (missing, wrong, revoked) or 403 (lacks the scope) *before a byte of the body is
   read*, so a caller without a key learns nothing about the body's shape and cannot
   make the service parse 100 MB for it; 503 `database_unavailable` when the key is not
   trusted yet and the database does not answer;
2. failed authentications per client address: past the `auth_failure` bucket a further
   unknown key gets 429 without a database look-up (a key already trusted in this
   process still passes, so a shared address does not lock its good keys out);
3. requests per API key and route class (`read`: GET/HEAD, `write`: the other methods,
   `admin`: routes that need the admin scope), and per client address on routes that
   need no key (`anonymous`: probes, docs): 429 with `Retry-After`;
4. the body: over `max_body_bytes` is a 413, refused from `Content-Length` alone or as
   soon as a chunked body passes the limit, never read further;
5. text PostgreSQL cannot store: a NUL character (U+0000) in a path parameter, a query
   parameter or any string of a JSON body is a 422 naming the field and the rule
   `no_nul_character`, for every route of every service at once; a JSON body that is not
   UTF-8 is a 422 `json_invalid` (the framework would answer an undeclared 400).

A method the path does not serve is a 405 whose `Allow` names every method the path
serves. The route then runs with the body already read (replayed from memory) and finds the
principal the gate authenticated, so the key is checked once per request. A GET of a lean
route (`shared.http.lean`) is answered here by its lean handler, past the framework, unless
the handler declines it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import URL
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import ApiKeyAuthenticator, ApiPrincipal
from shared.auth import Scope as KeyScope
from shared.errors import DomainError, Forbidden, is_transient
from shared.http.lean import LeanHandler, lean_handler, send_json
from shared.http.limits import Clock, Rate, TokenBuckets, UnknownCodeLockout, retry_after
from shared.http.problem import domain_problem, problem_response
from shared.settings import ServiceSettings

PRINCIPAL = "loyalty.principal"  # where the gate leaves the authenticated principal
NUL_RULE = "no_nul_character"
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class GateLimits:
    """The limits of one app, built from its settings (`build_limits`)."""

    read: TokenBuckets
    write: TokenBuckets
    admin: TokenBuckets
    auth_failure: TokenBuckets
    anonymous: TokenBuckets
    max_body_bytes: int
    unknown_codes: UnknownCodeLockout

    def bucket(self, route_class: str) -> TokenBuckets:
        buckets: dict[str, TokenBuckets] = {
            "read": self.read,
            "write": self.write,
            "admin": self.admin,
        }
        return buckets[route_class]


def build_limits(settings: ServiceSettings, clock: Clock = time.monotonic) -> GateLimits:
    """The gate's limits from `settings`; `clock` (monotonic seconds) is injectable for tests."""
    s = settings
    return GateLimits(
        read=TokenBuckets(Rate(s.rate_read_per_second, s.rate_read_burst), clock),
        write=TokenBuckets(Rate(s.rate_write_per_second, s.rate_write_burst), clock),
        admin=TokenBuckets(Rate(s.rate_admin_per_second, s.rate_admin_burst), clock),
        auth_failure=TokenBuckets(
            Rate(s.rate_auth_failure_per_second, s.rate_auth_failure_burst), clock
        ),
        anonymous=TokenBuckets(Rate(s.rate_anonymous_per_second, s.rate_anonymous_burst), clock),
        max_body_bytes=s.max_body_bytes,
        unknown_codes=UnknownCodeLockout(
            s.unknown_code_limit,
            s.unknown_code_window_seconds,
            s.unknown_code_lockout_seconds,
            clock,
        ),
    )


def required_scopes(dependant: Dependant) -> set[KeyScope]:
    """Every scope a route's dependencies require (tagged by `security.require`)."""
    found: set[KeyScope] = set()
    scope = getattr(dependant.call, "required_scope", None)
    if isinstance(scope, KeyScope):
        found.add(scope)
    for sub in dependant.dependencies:
        found |= required_scopes(sub)
    return found


RouteEntry = tuple[re.Pattern[str], frozenset[str], frozenset[KeyScope], LeanHandler | None]


def _api_routes(routes: Iterable[Any]) -> Iterator[tuple[re.Pattern[str], set[str], APIRoute]]:
    """(path pattern, methods, route) of every API route, in matching order.

    FastAPI up to 0.12x lists included routes flat; later versions keep each included
    router as one entry whose `effective_route_contexts` carry the full paths.
    """
    for route in routes:
        if isinstance(route, APIRoute):
            yield route.path_regex, route.methods or set(), route
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for context in contexts():
                if isinstance(context.original_route, APIRoute):
                    yield context.path_regex, context.methods, context.original_route


def route_table(app: FastAPI) -> list[RouteEntry]:
    """Each API route's path pattern, methods, the key scopes it requires and its lean
    handler (`shared.http.lean`), if it has one."""
    return [
        (
            pattern,
            frozenset(methods),
            frozenset(required_scopes(route.dependant)),
            lean_handler(route.endpoint),
        )
        for pattern, methods, route in _api_routes(app.routes)
    ]


@dataclass(frozen=True)
class _Head:
    """What the gate reads of the request headers, in one pass."""

    bearer: str | None = None
    content_length: int | None = None
    json: bool = False


def _head(scope: Scope) -> _Head:
    bearer, length, is_json = None, None, False
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            bearer = token.strip() if kind.lower() == "bearer" and token.strip() else None
        elif name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            is_json = media == b"application/json" or media.endswith(b"+json")
    return _Head(bearer, length, is_json)


def _nul_paths(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    """Where a NUL character sits in a parsed JSON document (keys and strings)."""
    if isinstance(value, str):
        if "\x00" in value:
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield (*path, key)
            yield from _nul_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_paths(item, (*path, index))


def _field(parts: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in parts)


class _TooLarge(Exception):
    pass


class Gate:
    """Pure ASGI middleware; `service` is the FastAPI app whose routes and state it reads."""

    def __init__(self, app: ASGIApp, service: FastAPI) -> None:
        self.app = app
        self.service = service
        self._table: list[RouteEntry] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits: GateLimits = self.service.state.gate_limits
        head = _head(scope)
        needs, path_params, allowed, lean = self._route(scope)
        if allowed:
            await _not_allowed(scope, allowed)(scope, receive, send)
            return
        if needs:
            refusal = await self._authorize(scope, head.bearer, needs, limits)
        else:
            refusal = self._anonymous(scope, limits)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        declared = head.content_length
        if declared is not None and declared > limits.max_body_bytes:
            await self._too_large(scope, limits)(scope, receive, send)
            return
        try:
            body, trailing = await self._read_body(receive, limits.max_body_bytes)
        except _TooLarge:
            await self._too_large(scope, limits)(scope, receive, send)
            return
        errors = self._nul_errors(scope, path_params, body) or _encoding_errors(head, body)
        if errors:
            await self._invalid(scope, errors)(scope, receive, send)
            return
        if lean is None or scope["method"] != "GET" or not self.service.state.lean_routes:
            await self.app(scope, _replay(body, trailing, receive), send)
        elif not await self._lean(lean, scope, path_params, receive, send):
            await self.app(scope, _replay(body, trailing, receive), send)  # declined

    def _route(
        self, scope: Scope
    ) -> tuple[frozenset[KeyScope], dict[str, Any], set[str], LeanHandler | None]:
        """The scopes the route matching this request needs, its path parameters and its
        lean handler; when only the method differs, the methods the path allows (for the
        405's `Allow`)."""
        if self._table is None:
            self._table = route_table(self.service)
        path, method = scope.get("path", ""), scope.get("method", "")
        allowed: set[str] = set()
        for pattern, methods, needs, lean in self._table:
            match = pattern.match(path)
            if match is None:
                continue
            if method in methods:
                return needs, match.groupdict(), set(), lean
            allowed |= methods
        return frozenset(), {}, allowed, None

    async def _lean(
        self,
        handler: LeanHandler,
        scope: Scope,
        path_params: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> bool:
        """Answer with the route's lean handler; False (nothing sent) when it declines."""
        try:
            body = await handler(self.service, path_params, gate_principal(scope))
        except DomainError as refused:
            await domain_problem(refused, URL(scope=scope).path)(scope, receive, send)
            return True
        if body is None:
            return False
        await send_json(send, body)
        return True

    async def _authorize(
        self, scope: Scope, token: str | None, needs: frozenset[KeyScope], limits: GateLimits
    ) -> Any:
        authenticator = self._authenticator()
        client = (scope.get("client") or ("unknown", 0))[0]
        principal = authenticator.cache.get(token) if token else None
        try:
            if principal is None:  # not a key this instance trusts already: ask the database
                wait = limits.auth_failure.empty_for(client)
                if wait > 0:
                    return self._too_many(
                        scope, "too_many_failed_authentications", wait, "auth_failure"
                    )
                principal = await authenticator.authenticate(token)
        except DomainError as refused:
            wait = limits.auth_failure.take(client)
            if wait > 0:
                return self._too_many(
                    scope, "too_many_failed_authentications", wait, "auth_failure"
                )
            return _problem(scope, refused)
        except Exception as error:
            if not is_transient(error):
                raise
            return problem_response(  # as the services' own reads answer an outage
                503,
                "database_unavailable",
                detail="the API key could not be checked: the database did not answer; retry later",
                instance=scope.get("path"),
            )
        missing = sorted(need.value for need in needs if not principal.allows(need))
        if missing:
            return _problem(
                scope,
                Forbidden(
                    f"this API key lacks the scope {missing[0]}",
                    code="scope_missing",
                    required_scope=missing[0],
                ),
            )
        route_class = _route_class(scope, needs)
        wait = limits.bucket(route_class).take(principal.key_id)
        if wait > 0:
            return self._too_many(scope, "rate_limited", wait, route_class)
        scope[PRINCIPAL] = principal
        return None

    def _anonymous(self, scope: Scope, limits: GateLimits) -> Any:
        """Routes without a key (probes, docs, unknown paths) are limited per client address:
        `/readyz` asks PostgreSQL and the broker, so a flood of it must not reach them."""
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = limits.anonymous.take(client)
        return self._too_many(scope, "rate_limited", wait, "anonymous") if wait > 0 else None

    def _authenticator(self) -> ApiKeyAuthenticator:
        state = self.service.state
        existing = getattr(state, "authenticator", None)
        if not isinstance(existing, ApiKeyAuthenticator):
            existing = state.authenticator = ApiKeyAuthenticator(state.engine)
        return existing

    @staticmethod
    def _too_many(scope: Scope, code: str, wait: float, route_class: str) -> Any:
        detail = (
            "too many failed authentications from this address"
            if route_class == "auth_failure"
            else "too many requests without an API key from this address"
            if route_class == "anonymous"
            else f"too many {route_class} requests for this API key"
        )
        return problem_response(
            429,
            code,
            detail=f"{detail}; retry after {retry_after(wait)} s",
            instance=scope.get("path"),
            headers={"Retry-After": retry_after(wait)},
            limit=route_class,
        )

    @staticmethod
    def _too_large(scope: Scope, limits: GateLimits) -> Any:
        return problem_response(
            413,
            "payload_too_large",
            detail=f"the request body exceeds {limits.max_body_bytes} bytes",
            instance=scope.get("path"),
            headers={"Connection": "close"},
            max_body_bytes=limits.max_body_bytes,
        )

    @staticmethod
    async def _read_body(receive: Receive, limit: int) -> tuple[bytes, list[Message]]:
        """The whole body, or _TooLarge as soon as it passes `limit` (nothing more is read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), [message]  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), []

    @staticmethod
    def _nul_errors(scope: Scope, path_params: dict[str, Any], body: bytes) -> list[dict[str, Any]]:
        query: bytes = scope.get("query_string", b"")
        suspect = "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query
        if not suspect and b"\\u0000" not in body:
            return []  # the common case, at the cost of three substring searches
        fields = [f"path.{name}" for name, v in path_params.items() if "\x00" in str(v)]
        if "\x00" in scope.get("path", "") and not fields:
            fields.append("path")
        if b"%00" in query or b"\x00" in query:
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            fields += [f"query.{n}" for n, v in pairs if "\x00" in n or "\x00" in v]
        if b"\\u0000" in body:
            try:
                document = json.loads(body)
            except ValueError:
                document = None  # malformed JSON: the route's validation names it
            fields += [_field(("body", *where)) for where in _nul_paths(document, ())]
        return [
            {
                "field": field,
                "rule": NUL_RULE,
                "message": "must not contain the NUL character (U+0000)",
            }
            for field in dict.fromkeys(fields)
        ]

    @staticmethod
    def _invalid(scope: Scope, errors: list[dict[str, Any]]) -> Any:
        names = ", ".join(error["field"] for error in errors)
        return problem_response(
            422,
            "validation_failed",
            title="The request is not valid",
            detail=f"invalid: {names}",
            instance=scope.get("path"),
            errors=errors,
        )


def _encoding_errors(head: _Head, body: bytes) -> list[dict[str, Any]]:
    """A JSON body that is not UTF-8 (RFC 8259 §8.1): a 422 like any malformed JSON, where
    the framework would answer a 400 no route declares."""
    if not body or not head.json:
        return []
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        return [
            {
                "field": "body",
                "rule": "json_invalid",
                "message": f"the body is not UTF-8 (byte {error.start})",
            }
        ]
    return []


def _not_allowed(scope: Scope, allowed: set[str]) -> Any:
    """405 listing every method of the path: the framework lists only those of the first
    route whose path matched, when GET and PUT of one path are separate routes."""
    methods = ", ".join(sorted(allowed))
    return problem_response(
        405,
        "method_not_allowed",
        detail=f"{scope.get('method')} is not allowed here; allowed: {methods}",
        instance=scope.get("path"),
        headers={"Allow": methods},
    )


def _route_class(scope: Scope, needs: frozenset[KeyScope]) -> str:
    if KeyScope.ADMIN in needs:
        return "admin"
    return "read" if scope.get("method") in _BODYLESS else "write"


def _problem(scope: Scope, error: DomainError) -> Any:
    return problem_response(
        error.status,
        error.code,
        title=error.title,
        detail=error.detail,
        instance=scope.get("path"),
        **error.extra,
    )


def _replay(body: bytes, trailing: list[Message], receive: Receive) -> Receive:
    """A `receive` that hands over the body already read, then what the client sends next."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    pending += trailing

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def gate_principal(scope: Scope) -> ApiPrincipal | None:
    """The principal the gate authenticated for this request, if any."""
    principal = scope.get(PRINCIPAL)
    return principal if isinstance(principal, ApiPrincipal) else None
