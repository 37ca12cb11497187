"""Refuse guessing: a key that keeps asking for codes that do not exist is locked out.

Some codes are bearer secrets (a voucher code at the till, say); a caller who can try
codes at the rate limit would find live ones. Routes that look such a code up wrap the
look-up:

    async with refuse_guessing(request, principal):
        return await find_by_code(conn, code)

A `NotFound` leaving the block counts one unknown code against the key; `limit` of
them within `window` seconds lock the key out of every route so wrapped for `lockout`
seconds (settings `unknown_code_*`), answered 429 `too_many_unknown_codes` with
`Retry-After` and without touching the database. Known codes never count. Per instance,
like the rate limits (shared.http.limits).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request

from shared.auth import ApiPrincipal
from shared.errors import DomainError, NotFound
from shared.http.gate import GateLimits
from shared.http.limits import retry_after


class TooManyUnknownCodes(DomainError):
    status, code, title = 429, "too_many_unknown_codes", "Too many unknown codes"

    def __init__(self, seconds: float) -> None:
        wait = retry_after(seconds)
        super().__init__(
            f"this API key asked for too many unknown codes; retry after {wait} s",
            retry_after_seconds=int(wait),
        )
        self.headers = {"Retry-After": wait}


@asynccontextmanager
async def refuse_guessing(request: Request, principal: ApiPrincipal) -> AsyncIterator[None]:
    """Refuse a locked-out key up front; count a NotFound raised inside against it."""
    lockout = _limits(request).unknown_codes
    locked = lockout.locked_for(principal.key_id)
    if locked > 0:
        raise TooManyUnknownCodes(locked)
    try:
        yield
    except NotFound:
        lockout.record_miss(principal.key_id)
        raise


def _limits(request: Request) -> GateLimits:
    limits: GateLimits = request.app.state.gate_limits
    return limits
