"""`encode_event` writes exactly the bytes `orjson.dumps(model_dump(mode="json"))` wrote.

Consumers, fingerprints and the pinned payload tests depend on those bytes. The JSON
writer changed (pydantic-core instead of orjson), so every value a contract or an extra
field can carry is compared: text with escapes and any code point, integers to 64 bits,
floats in extras, nested extras, money and measured decimals, datetimes with offsets.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.contracts.envelope import EventEnvelope
from shared.contracts.registry import decode_event, encode_event
from tests.support.counting import purchase


def _before(event: EventEnvelope) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    extra=st.dictionaries(st.from_regex(r"\Ax_[a-z]{1,8}\Z"), _json, max_size=3),
    data_extra=_json,
    amount=st.decimals(min_value=0, max_value=10**9, places=2),
    offset=st.sampled_from(["Z", "+00:00", "+01:00", "-05:30", "+14:00"]),
    micros=st.sampled_from(["", ".5", ".000250", ".123456"]),
)
def test_purchases_with_any_extras_encode_to_the_same_bytes(
    extra: dict[str, Any], data_extra: Any, amount: Any, offset: str, micros: str
) -> None:
    document = purchase("c1", amount=f"{amount:.2f}")
    document.update(extra)
    document["occurred_at"] = f"2026-03-01T12:00:00{micros}{offset}"
    document["data"]["x_hint"] = data_extra
    event = decode_event(orjson.dumps(document))
    assert encode_event(event) == _before(event)


def test_every_kind_of_field_encodes_to_the_same_bytes() -> None:
    incident = {
        "event_id": str(uuid.UUID(int=3)),
        "type": "service.incident",
        "version": 1,
        "occurred_at": "2026-03-01T12:00:00.25+02:00",
        "source": "ops",
        "customer_id": "c-1",
        "data": {
            "incident_id": "i-1",
            "merchant_id": "m-1",
            "promise_kind": "dish_wait_time",
            "measured": {"value": "12.5", "unit": "minutes"},
            "order_id": "o-1",
            "order_amount": "120.50",
            "currency": "EUR",
            "x_note": 'r\u00e9sum\u00e9 \u2028 \U0001f600 \\ " \n',
        },
    }
    for document in (purchase("c1"), incident):
        event = decode_event(orjson.dumps(document))
        assert encode_event(event) == _before(event), f"{event.type} is encoded differently"
