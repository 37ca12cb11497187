"""Opaque cursors for keyset pagination: the last row's sort key, base64url of JSON.

A list answers at most `limit` items and a `next_cursor` naming the last one (null at the
end); the client passes it back as `cursor` and never looks inside. Decoding takes the
fields it expects and a parser for each, so a cursor that is not one this API issued (bad
base64, not JSON, a missing or malformed field) is a 422 problem naming `cursor`, never a
500. Domain-free: the service says which keys a cursor holds.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson

from shared.errors import Unprocessable

MAX_CURSOR_LENGTH = 400
_Row = TypeVar("_Row")


class InvalidCursor(Unprocessable):
    code, title = "invalid_cursor", "The cursor is not one this API issued"


def encode_cursor(position: Mapping[str, Any]) -> str:
    """An opaque page token for `position` (datetimes and UUIDs as text)."""
    raw = orjson.dumps(position, default=str)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def split_page(
    rows: Sequence[_Row], limit: int, position: Callable[[_Row], Mapping[str, Any]]
) -> tuple[Sequence[_Row], str | None]:
    """The page of `rows` fetched as `limit + 1`, and the cursor naming its last row's
    `position` (None when no row follows)."""
    page = rows[:limit]
    return page, encode_cursor(position(page[-1])) if len(rows) > limit else None


def aware_datetime(value: Any) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a cursor's time has a timezone")
    return moment


def text(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 300:
        raise ValueError("not a key")
    return value


def decode_cursor(token: str, fields: Mapping[str, Callable[[Any], Any]]) -> dict[str, Any]:
    """The `fields` of a cursor from `encode_cursor`, each through its parser; anything else
    is `InvalidCursor` (422, field `cursor`)."""
    try:
        if len(token) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        position = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(position, dict) or set(position) != set(fields):
            raise ValueError("not a position")
        return {name: parse(position[name]) for name, parse in fields.items()}
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError):
        raise InvalidCursor("cursor: not a cursor from a previous page", field="cursor") from None
