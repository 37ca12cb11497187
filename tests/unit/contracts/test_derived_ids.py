"""Derived event ids must stay exactly uuid5: ids already published were made that way,
and a replay must re-derive the very same id."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from shared.contracts.envelope import _DERIVED_NAMESPACE, derived_event_id


@given(parent=st.uuids(), purpose=st.text(max_size=60))
def test_derived_id_is_the_standard_uuid5_of_parent_and_purpose(
    parent: uuid.UUID, purpose: str
) -> None:
    expected = uuid.uuid5(_DERIVED_NAMESPACE, f"{parent}:{purpose}")
    derived = derived_event_id(parent, purpose)
    assert derived == expected, "a derived id differs from uuid5: replays would not deduplicate"
    assert derived.version == 5
    assert str(derived) == str(expected)
    assert derived_event_id(str(parent), purpose) == expected


def test_a_known_derived_id_never_changes() -> None:
    parent = uuid.UUID("0ed90475-9531-485d-9d9d-c9f81818e811")
    assert derived_event_id(parent, "lot") == uuid.uuid5(_DERIVED_NAMESPACE, f"{parent}:lot")
