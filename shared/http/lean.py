"""Lean routes: a hot GET the gate answers itself, past the framework, in its common case.

A lean route stays an ordinary FastAPI route (its OpenAPI operation, parameter validation
and dependencies are what the docs and every other request see) and carries a *lean
handler* besides:

    @router.get("/customers/{customer_id}/balance", response_model=BalanceOut, ...)
    @lean(balance_lean)
    async def get_balance(request: Request, customer_id: CustomerPath, principal: Reader): ...

When the gate (`shared.http.gate`) has let a GET of such a route through (the key
authenticated, its scopes checked, its rate limit taken) it calls the lean handler with
the app, the raw path parameters and the principal, and sends the JSON body the handler
returns with status 200. The handler returns None when the request is not the case it
serves (a parameter the route would refuse, say): nothing has been sent, and the framework
handles the request as usual, with the 422 it always gave. A `DomainError` the handler
raises becomes the problem+json the framework's handler makes of it; anything else is a
crash, which the crash net outside the gate turns into a logged 500, as for any route.

Why: FastAPI's routing, request object, dependency solving and response class cost as
much CPU per request as the balance read itself (`python -m bench points`: a bare FastAPI
route with one path parameter costs ~150 µs of CPU more than a bare ASGI answer, on a
machine where the whole balance request costs ~650 µs). `app.state.lean_routes = False`
turns every lean route back into a framework route (the tests compare the two).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from starlette.types import Send

from shared.auth import ApiPrincipal

LeanHandler = Callable[[Any, Mapping[str, str], ApiPrincipal | None], Awaitable[bytes | None]]
"""(app, raw path parameters, principal) -> the JSON body of a 200, or None: not handled."""

_ATTRIBUTE = "__lean_handler__"
_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


def lean(handler: LeanHandler) -> Callable[[_Endpoint], _Endpoint]:
    """Give a GET endpoint a lean handler (put it under the route decorator)."""

    def attach(endpoint: _Endpoint) -> _Endpoint:
        setattr(endpoint, _ATTRIBUTE, handler)
        return endpoint

    return attach


def lean_handler(endpoint: Callable[..., Any] | None) -> LeanHandler | None:
    """The lean handler `lean` attached to `endpoint`, if any."""
    handler: LeanHandler | None = getattr(endpoint, _ATTRIBUTE, None)
    return handler


async def send_json(send: Send, body: bytes) -> None:
    """A 200 with `body`, with the headers Starlette's `Response(body, media_type=
    "application/json")` sends, in its order."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(body)).encode("latin-1")),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
