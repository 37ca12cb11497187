"""Idempotency keys: stable strings that a database unique constraint can hold.

Identifiers may contain the separator (":" is allowed in customer and order ids
at the edge), so each part is percent-encoded before joining; otherwise
("a:b", "c") and ("a", "b:c") would share a key and one reward would be lost.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from urllib.parse import quote

from services.rewards.domain.errors import BlankIdentifierError

# What `quote(text, safe="")` leaves as it is: ASCII letters, digits and "_.-~". Nearly
# every id is only that, and quote() costs ~1 µs a part (a breach key is built twice per
# incident, `python -m bench rewards`); anything else is quoted.
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch


def idempotency_key(namespace: str, *parts: str | int) -> str:
    """Join `parts` under `namespace` so that distinct part tuples never collide."""
    encoded = []
    for part in (namespace, *parts):
        text = str(part)
        encoded.append(text if _UNQUOTED(text) else quote(text, safe=""))
    return ":".join(encoded)


def require_identifier(value: str, what: str) -> str:
    """Return `value`, or raise if it is blank: a blank id would merge unrelated records."""
    if not value or not value.strip():
        raise BlankIdentifierError(f"{what} must not be blank")
    return value


_VERSION_VARIANT_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_VERSION_5_VARIANT_RFC = (0x5000 << 64) | (0x8000 << 48)


def derived_uuid(namespace: uuid.UUID, name: str) -> uuid.UUID:
    """Exactly `uuid.uuid5(namespace, name)`, without the standard library's detours
    (bytes -> UUID -> version rewrite): compensation and voucher ids are derived per
    incident on the consumer's hot path (`python -m bench rewards`)."""
    digest = hashlib.sha1(namespace.bytes + name.encode(), usedforsecurity=False).digest()
    value = int.from_bytes(digest[:16], "big") & _VERSION_VARIANT_CLEAR | _VERSION_5_VARIANT_RFC
    return uuid.UUID(int=value)
