"""Composition root of the console: settings, the HTTP client, sessions, pages."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from console import customers, dead_letters, operations, programme
from console.gateway import Gateway, NoKey, ServiceRefused
from console.sessions import SERVICES, ServiceAccess, SessionStore
from console.settings import ConsoleSettings
from console.web import (
    COOKIE,
    CsrfRefused,
    NotSignedIn,
    back_to,
    gateway_of,
    posted_form,
    render,
    session_of,
    store_of,
)

Clock = Callable[[], datetime]


def create_app(
    settings: ConsoleSettings | None = None,
    clock: Clock | None = None,
    bootstrap_servers: str | None = None,
) -> FastAPI:
    settings = settings or ConsoleSettings()
    clock = clock or (lambda: datetime.now(UTC))
    secret = (
        settings.session_secret.get_secret_value()
        if settings.session_secret
        else secrets.token_urlsafe(32)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=settings.service_timeout_seconds) as client:
            app.state.gateway = Gateway(settings.service_urls(), client)
            yield

    app = FastAPI(
        title="Loyalty operations console",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.sessions = SessionStore(secret, timedelta(hours=settings.session_hours), clock)
    app.state.bootstrap_servers = bootstrap_servers
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), "static")
    app.middleware("http")(_session_middleware)
    _handlers(app)
    app.get("/healthz")(alive)
    app.get("/readyz")(alive)
    app.get("/signin", response_class=HTMLResponse)(sign_in_page)
    app.post("/signin")(sign_in)
    app.post("/signout")(sign_out)
    for module in (operations, customers, dead_letters, programme):
        app.include_router(module.router)
    return app


async def _session_middleware(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    store = store_of(request)
    session = store.find(request.cookies.get(COOKIE))
    request.state.session = session or store.new()
    response = await call_next(request)
    current = request.state.session  # sign-in and sign-out replace it
    settings: ConsoleSettings = request.app.state.settings
    if current is not session:
        response.set_cookie(
            COOKIE,
            store.cookie_value(current),
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
            max_age=int(settings.session_hours * 3600),
        )
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # No script at all; styles and images from the console only; forms post only to it.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def _handlers(app: FastAPI) -> None:
    async def not_signed_in(request: Request, exc: Exception) -> Response:
        return RedirectResponse("/signin", status_code=303)

    async def csrf(request: Request, exc: Exception) -> Response:
        return render(
            request,
            "error.html",
            {
                "message": "This form expired or did not come "
                "from this console (CSRF token missing or wrong). Open the page again."
            },
            status=403,
        )

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceRefused)
        status = exc.status if 400 <= exc.status < 500 else 502
        return render(
            request, "error.html", {"message": exc.message, "code": exc.code}, status=status
        )

    async def no_key(request: Request, exc: Exception) -> Response:
        return render(request, "error.html", {"message": str(exc)}, status=403)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        where = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
            for e in exc.errors()
        )
        return render(request, "error.html", {"message": where, "code": "invalid"}, status=422)

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(NotSignedIn, not_signed_in)
    app.add_exception_handler(CsrfRefused, csrf)
    app.add_exception_handler(ServiceRefused, refused)
    app.add_exception_handler(NoKey, no_key)


async def alive() -> dict[str, str]:
    """The console keeps no state worth probing: up is ready (each page says what it lacks)."""
    return {"status": "ok"}


async def sign_in_page(request: Request) -> HTMLResponse:
    return render(request, "signin.html", {})


async def sign_in(request: Request) -> Response:
    """Each key pasted is tried at every service; a key nobody accepts is refused."""
    form = await posted_form(request)
    name = form.get("name", "").strip()
    keys = [k.strip() for k in form.get("keys", "").split() if k.strip()]
    problems = []
    if not name or len(name) > 200 or not name.isprintable():
        problems.append(
            "name: say who you are (1-200 printable characters); "
            "acknowledgements and decisions carry it"
        )
    if not keys:
        problems.append("keys: paste at least one API key")
    access: dict[str, ServiceAccess] = {}
    unreachable: set[str] = set()
    for number, key in enumerate(keys[:6], start=1):
        found = await gateway_of(request).access_of(key, unreachable)
        if not found:
            problems.append(f"keys: key {number} of those pasted is accepted by no service")
        access.update(found)
    down = f"the {', '.join(sorted(unreachable))} service did not answer" if unreachable else ""
    if down and not access:
        problems.append(f"{down}: try again shortly")
    if problems or not access:
        return render(request, "signin.html", {"problems": problems, "name": name}, status=422)
    request.state.session = store_of(request).sign_in(session_of(request), name, access)
    services = ", ".join(
        f"{s}{' (admin)' if access[s].admin else ''}" for s in SERVICES if s in access
    )
    later = f" ({down}: sign in again once it is back)" if down else ""
    return back_to("/", request.state.session, f"Signed in as {name}: {services}.{later}")


async def sign_out(request: Request) -> Response:
    await posted_form(request)
    store = store_of(request)
    store.end(session_of(request))
    request.state.session = store.new()
    return back_to("/signin", request.state.session, "Signed out.")
