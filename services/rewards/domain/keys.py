"""Idempotency keys: stable strings that a database unique constraint can hold.

Identifiers may contain the separator (":" is allowed in customer and order ids
at the edge), so each part is percent-encoded before joining; otherwise
("a:b", "c") and ("a", "b:c") would share a key and one reward would be lost.
"""

from __future__ import annotations

from urllib.parse import quote

from services.rewards.domain.errors import BlankIdentifierError


def idempotency_key(namespace: str, *parts: str | int) -> str:
    """Join `parts` under `namespace` so that distinct part tuples never collide."""
    encoded = (quote(str(part), safe="") for part in (namespace, *parts))
    return ":".join(encoded)


def require_identifier(value: str, what: str) -> str:
    """Return `value`, or raise if it is blank: a blank id would merge unrelated records."""
    if not value or not value.strip():
        raise BlankIdentifierError(f"{what} must not be blank")
    return value
