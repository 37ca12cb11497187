"""What every page shares: the session of the request, CSRF checks, rendering, formats."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from console.gateway import Gateway
from console.sessions import Session, SessionStore

COOKIE = "loyalty_console"
NONE = "\N{EN DASH}"  # what a page shows for a missing value
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


class NotSignedIn(Exception):
    """The page needs a signed-in person; they are sent to the sign-in page."""


class CsrfRefused(Exception):
    """A form post without this session's CSRF token."""


def session_of(request: Request) -> Session:
    session: Session = request.state.session
    return session


def signed_in(request: Request) -> Session:
    session = session_of(request)
    if not session.signed_in:
        raise NotSignedIn
    return session


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def store_of(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.sessions
    return store


def now_of(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


async def posted_form(request: Request) -> dict[str, str]:
    """The form's fields, once its CSRF token matched the session's."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not session_of(request).csrf_ok(fields.get("csrf_token")):
        raise CsrfRefused
    return fields


def render(
    request: Request, template: str, context: Mapping[str, Any], status: int = 200
) -> HTMLResponse:
    session = session_of(request)
    flash, session.flash = list(session.flash), []
    full = {"session": session, "flash": flash, "now": now_of(request), **context}
    return templates.TemplateResponse(request, template, full, status_code=status)


def back_to(url: str, session: Session, message: str | None = None) -> RedirectResponse:
    """After a post: say what happened on the next page (post/redirect/get)."""
    if message:
        session.flash.append(message)
    return RedirectResponse(url, status_code=303)


# --- formats used by the templates ---------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when(value: Any) -> str:
    moment = parse_time(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else NONE


def minor(value: Any, currency: Any = "") -> str:
    """Integer minor units as money text (never through a float)."""
    if value is None:
        return NONE
    amount = Decimal(int(value)) / 100
    return f"{amount:,.2f} {currency or ''}".strip()


def number(value: Any) -> str:
    return NONE if value is None else f"{int(value):,}"


templates.env.filters["when"] = when
templates.env.filters["minor"] = minor
templates.env.filters["number"] = number
templates.env.filters["svg"] = Markup  # charts.py escapes every label it writes


def items_in(document: Any, *names: str) -> list[Any]:
    """The list in an answer, whether bare or under one of `names` (pagination may add one)."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        for name in (*names, "items"):
            if isinstance(document.get(name), list):
                return list(document[name])
    return []
