"""One error base for the HTTP edge, and the line between transient and permanent faults."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class DomainError(Exception):
    """A rule was broken. `code` is stable and machine-readable; `status` is the HTTP status."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"
    headers: dict[str, str] | None = None  # e.g. Retry-After on a 429

    def __init__(
        self, detail: str, *, code: str | None = None, status: int | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class Unprocessable(DomainError):
    status, code, title = 422, "unprocessable", "Unprocessable request"


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Missing or invalid API key"


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "API key lacks permission"


class PoisonEvent(Exception):
    """A handler's verdict that an event can never be applied (goes to the dead-letter topic)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RejectedEvent(PoisonEvent):
    """One event a handler can never apply, named so the runtime dead-letters only it and
    applies the rest of the batch."""

    def __init__(self, event: HasEventId, code: str, message: str) -> None:
        super().__init__(code, message)
        self.event_id = str(event.event_id)


class HasEventId(Protocol):
    @property
    def event_id(self) -> object: ...


_TRANSIENT_SQLSTATES = {
    "40001",  # serialization failure
    "40P01",  # deadlock detected
    "55P03",  # lock not available
    "57P01",
    "57P02",
    "57P03",  # admin shutdown, crash shutdown, cannot connect now
    "53300",  # too many connections
    "08000",
    "08003",
    "08006",
    "08001",
    "08004",  # connection exceptions
}


def _sqlstate(exc: BaseException) -> str | None:
    for attr in ("sqlstate", "pgcode"):
        value = getattr(exc, attr, None)
        if isinstance(value, str):
            return value
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return seen


def is_transient(exc: BaseException) -> bool:
    """True when retrying later can succeed: the database or broker is down or busy."""
    from sqlalchemy import exc as sa_exc

    for item in _chain(exc):
        if isinstance(item, OSError | ConnectionError | asyncio.TimeoutError | TimeoutError):
            return True
        if isinstance(item, sa_exc.DBAPIError) and item.connection_invalidated:
            return True
        if isinstance(item, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
            return True
        if _sqlstate(item) in _TRANSIENT_SQLSTATES:
            return True
        name = type(item).__name__
        if name in {
            "ConnectionDoesNotExistError",
            "InterfaceError",
            "InternalClientError",
            "KafkaConnectionError",
            "NodeNotReadyError",
            "RequestTimedOutError",
            "KafkaTimeoutError",
            "NotLeaderForPartitionError",
            "LeaderNotAvailableError",
            "CannotConnectNowError",
        }:
            return True
        if getattr(item, "retriable", False):
            return True
    return False
