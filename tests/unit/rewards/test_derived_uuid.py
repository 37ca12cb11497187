"""`derived_uuid` is `uuid.uuid5`, bit for bit: compensation and voucher ids already stored
were derived with the standard library, and a replay must derive the same ids. Likewise
`idempotency_key` is every part percent-encoded and joined, with or without its fast path."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.rewards.domain.breach_book import _COMPENSATION_NAMESPACE, compensation_id_for
from services.rewards.domain.keys import derived_uuid, idempotency_key
from services.rewards.vouchers.service import _VOUCHER_NAMESPACE, voucher_id_for

NAMES = ["", "a", "o1:dish_wait_time#3", "compensation:5b3c:fruit-plate", "ü€😀", "x" * 500]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "namespace", [_COMPENSATION_NAMESPACE, _VOUCHER_NAMESPACE, uuid.NAMESPACE_URL]
)
def test_derived_uuid_is_uuid5(namespace: uuid.UUID, name: str) -> None:
    derived = derived_uuid(namespace, name)
    assert derived == uuid.uuid5(namespace, name)
    assert derived.version == 5


def test_the_ids_the_service_stores_are_unchanged() -> None:
    assert compensation_id_for("o1:k", 2) == uuid.uuid5(_COMPENSATION_NAMESPACE, "o1:k#2")
    assert voucher_id_for("compensation:x:r") == uuid.uuid5(_VOUCHER_NAMESPACE, "compensation:x:r")


@settings(max_examples=500, deadline=None)
@given(
    parts=st.lists(
        st.one_of(
            st.text(max_size=20),
            st.text(alphabet="AZaz09_.~-:/ %é\n", max_size=12),
            st.integers(-(10**6), 10**6),
        ),
        max_size=4,
    )
)
def test_idempotency_keys_are_the_quoted_parts_joined(parts: list[str | int]) -> None:
    """The unquoted fast path changes no key: every part as `quote(..., safe="")` gives it."""
    expected = ":".join(quote(str(part), safe="") for part in ("ns", *parts))
    assert idempotency_key("ns", *parts) == expected
