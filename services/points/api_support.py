"""What every points route shares: the clock, one transaction per request, the cached rule
book, opaque cursors, edge field types and the problem responses documented in OpenAPI.

Routes never commit by hand: `transaction` commits when the block ends without an error
and rolls back otherwise, so the response is only sent after the database said yes.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
import orjson
from fastapi import Path, Query, Request
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.points.rules import RuleBook, load_rule_book
from shared.errors import DomainError, Unprocessable, is_transient
from shared.http.problem import PROBLEM_JSON

Clock = Callable[[], datetime]

_ID_PATTERN = r"^[A-Za-z0-9._:@-]+$"
# Identifiers in paths: like the event contracts' `Identifier`, minus "/" (a path separator).
PathId = Annotated[str, Path(min_length=1, max_length=100, pattern=_ID_PATTERN)]
_BODY_ID_PATTERN = r"^[A-Za-z0-9._:@/-]+$"  # the contracts' `Identifier`
OptionalQueryId = Annotated[
    str | None, Query(min_length=1, max_length=100, pattern=_BODY_ID_PATTERN)
]
BodyId = Annotated[str, Field(min_length=1, max_length=100, pattern=_BODY_ID_PATTERN)]
# Customer ids exactly as the event envelope allows them, so every event can name them.
_CUSTOMER_PATTERN = r"^[A-Za-z0-9._:@-]+$"
CustomerPath = Annotated[str, Path(min_length=1, max_length=64, pattern=_CUSTOMER_PATTERN)]
CustomerBody = Annotated[str, Field(min_length=1, max_length=64, pattern=_CUSTOMER_PATTERN)]
OptionalCustomerQuery = Annotated[
    str | None, Query(min_length=1, max_length=64, pattern=_CUSTOMER_PATTERN)
]
MAX_POINTS = 1_000_000_000  # far above any real basket; keeps every sum inside BIGINT
_CURSOR_TEXT = re.compile(r"^[A-Za-z0-9._:@/-]{1,100}$")  # ids as the contracts allow them
_EARLIEST, _LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


def _sane_moment(moment: datetime) -> datetime:
    # Dates near year 1 or 9999 overflow when shifted to UTC or by months: refuse them here.
    if not _EARLIEST <= moment <= _LATEST:
        raise ValueError("must lie between 1970-01-01 and 9000-01-01")
    return moment


Moment = Annotated[AwareDatetime, AfterValidator(_sane_moment)]
"""RFC 3339 date-time with a time zone, within sane bounds."""


class ServiceUnavailable(DomainError):
    status, code, title = 503, "database_unavailable", "The points database is not reachable"


class InvalidCursor(Unprocessable):
    code, title = "invalid_cursor", "The cursor is not one this API issued"


def clock_of(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def engine_of(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


@asynccontextmanager
async def transaction(request: Request) -> AsyncIterator[AsyncConnection]:
    """One transaction for the request; a database outage becomes 503, never a bare 500."""
    try:
        async with engine_of(request).begin() as conn:
            yield conn
    except DomainError:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise ServiceUnavailable("the points database did not answer; retry later") from exc
        raise


@asynccontextmanager
async def reading(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the read pool (see `shared.db.create_read_pool`); a database outage
    becomes 503. No transaction: at READ COMMITTED each statement sees its own snapshot."""
    pool: asyncpg.Pool = request.app.state.read_pool
    try:
        async with pool.acquire() as conn:
            yield conn
    except DomainError:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise ServiceUnavailable("the points database did not answer; retry later") from exc
        raise


class RuleBookCache:
    """The rule versions, re-read at most every `ttl` seconds (and at once after an edit)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._book: RuleBook | None = None
        self._read_at = 0.0

    async def get(self, engine: AsyncEngine) -> RuleBook:
        if self._book is None or self.clock() - self._read_at >= self.ttl:
            async with engine.connect() as conn:
                self._book = await load_rule_book(conn)
            self._read_at = self.clock()
        return self._book

    def invalidate(self) -> None:
        self._book = None


def rule_cache(request: Request) -> RuleBookCache:
    cache: RuleBookCache = request.app.state.rule_cache
    return cache


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque page token: clients pass it back and never look inside."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(token: str, field: str, kind: type) -> Any:
    """The `field` of a cursor from `encode_cursor`; anything else is a 422 naming `cursor`."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = orjson.loads(raw)[field]
    except (binascii.Error, ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise InvalidCursor("cursor: not a cursor from a previous page", field="cursor") from None
    malformed = isinstance(value, str) and not _CURSOR_TEXT.match(value)
    if not isinstance(value, kind) or isinstance(value, bool) or malformed:
        raise InvalidCursor("cursor: not a cursor from a previous page", field="cursor")
    return value


def money_text(minor: int, exponent: int) -> str:
    """Integer minor units as a decimal string with exactly `exponent` decimals."""
    return f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"


class Problem(BaseModel):
    """An RFC 9457 problem document; `code` is stable, `detail` is for people."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the listed error statuses, as application/problem+json."""
    described = {
        401: "No API key, or not a valid one",
        403: "The key lacks the scope, or is bound to another merchant",
        404: "Not found",
        409: "Conflicts with the current state",
        422: "The request breaks a rule; `errors` or `field` name what",
        503: "The database is not reachable; retry later",
    }
    return {
        status: {
            "description": described.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": Problem.model_json_schema()}},
        }
        for status in statuses
    }
