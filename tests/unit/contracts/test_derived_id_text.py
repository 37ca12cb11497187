"""`derived_id_text` is the text of `derived_event_id`, character for character: lot ids
already stored were written as `str(uuid5(...))`, and a replay must derive the same id."""

from __future__ import annotations

import hashlib
import uuid

from hypothesis import given
from hypothesis import strategies as st

from shared.contracts.envelope import _DERIVED_NAMESPACE, derived_event_id, derived_id_text


@given(parent=st.uuids() | st.text(max_size=60), purpose=st.text(max_size=60))
def test_the_text_of_a_derived_id_is_the_standard_uuid5_text(
    parent: uuid.UUID | str, purpose: str
) -> None:
    expected = str(uuid.uuid5(_DERIVED_NAMESPACE, f"{parent}:{purpose}"))
    assert derived_id_text(parent, purpose) == expected, "a lot id would differ on replay"
    assert derived_id_text(parent, purpose) == str(derived_event_id(parent, purpose))


def test_every_variant_digit_is_rewritten_as_uuid5_does() -> None:
    # The variant's hex digit takes 16 values before the rewrite; find a parent for each.
    seen: dict[str, str] = {}
    number = 0
    while len(seen) < 16:
        parent = uuid.UUID(int=number)
        digest = uuid.uuid5(_DERIVED_NAMESPACE, f"{parent}:lot").hex  # already rewritten
        name = _DERIVED_NAMESPACE.bytes + f"{parent}:lot".encode()
        raw = hashlib.sha1(name, usedforsecurity=False).hexdigest()
        seen.setdefault(raw[16], derived_id_text(parent, "lot"))
        assert derived_id_text(parent, "lot").replace("-", "") == digest
        number += 1
