"""`encode_plain_event` writes exactly the bytes `encode_event` writes.

The accrual's outbox encodes its events with orjson from the instances' own values
instead of pydantic-core's serializer. Consumers, fingerprints and the pinned payload
tests depend on the bytes, so every value a plain points event can carry is compared
(text with escapes and any code point, integers to and beyond 64 bits, datetimes with
offsets and fractions, absent dates, string enums, lists), and every instance the fast
path must not write itself (not plain, extras, missing fields) is shown to fall back.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.contracts import registry
from shared.contracts.envelope import EventEnvelope
from shared.contracts.points import PointsAccrued, PointsCredited, PointsSettled
from shared.contracts.registry import decode_event, encode_event, encode_plain_event

_ids = st.from_regex(r"\A[A-Za-z0-9._:@/-]{1,40}\Z")
_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)
_count = st.integers(min_value=0, max_value=2**70)  # past 64 bits: orjson refuses, falls back
_moment = st.builds(
    lambda day, micros, offset: f"2026-03-{day:02d}T12:00:00{micros}{offset}",
    st.integers(1, 28),
    st.sampled_from(["", ".5", ".000250", ".123456"]),
    st.sampled_from(["Z", "+00:00", "+01:00", "-05:30", "+14:00"]),
)


def _snapshot(draw: Any) -> dict[str, Any]:
    return {
        "available": draw(st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        "pending": draw(_count),
        "debt": draw(_count),
        "lifetime_earned": draw(_count),
        "purchase_count": draw(_count),
        "first_purchase": draw(st.booleans()),
        "tier": draw(st.sampled_from(["member", "silver", "gold", "platinum"])),
    }


@st.composite
def _points_events(draw: Any) -> EventEnvelope:
    kind = draw(st.sampled_from(["points.accrued", "points.credited"]))
    data = _snapshot(draw)
    if kind == "points.accrued":
        data.update(
            order_id=draw(_ids),
            merchant_id=draw(_ids),
            points=draw(_count),
            pending_until=draw(st.none() | _moment),
            expires_at=draw(st.none() | _moment),
            campaign_ids=draw(st.lists(_text, max_size=3)),
            capped=draw(st.booleans()),
        )
    else:
        data.update(
            credit_id=draw(_ids),
            points=draw(st.integers(min_value=1, max_value=2**64)),
            reason=draw(_text),
            merchant_id=draw(st.none() | _ids),
        )
    document = {
        "event_id": str(draw(st.uuids())),
        "type": kind,
        "version": 1,
        "occurred_at": draw(_moment),
        "source": "points",
        "customer_id": draw(st.from_regex(r"\A[A-Za-z0-9._:@-]{1,40}\Z")),
        "data": data,
    }
    event = decode_event(document)  # a dict: orjson would refuse the integers past 64 bits
    assert isinstance(event, PointsAccrued | PointsCredited)
    return event


@settings(max_examples=400, deadline=None)
@given(event=_points_events())
def test_plain_points_events_encode_to_the_same_bytes(event: EventEnvelope) -> None:
    assert encode_plain_event(event) == encode_event(event)


def test_a_plain_event_is_written_by_orjson_not_by_the_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = _accrued()
    expected = encode_event(event)
    monkeypatch.setattr(registry, "encode_event", _no_fallback)
    assert encode_plain_event(event) == expected


def test_what_orjson_cannot_write_as_pydantic_does_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extras = decode_event(orjson.dumps({**_document(), "x_trace": {"hop": 1.5}}))
    huge = _accrued(points=2**64)
    fields: dict[str, Any] = dict.fromkeys(PointsSettled.model_fields)
    settled = PointsSettled.model_construct(**fields)  # not plain: its data holds money
    assert registry._is_plain(PointsSettled) is None
    missing = PointsAccrued.model_construct(**{**_accrued().__dict__, "source": None})
    del missing.__dict__["source"]
    for event in (extras, huge):
        assert encode_plain_event(event) == encode_event(event)
    calls: list[EventEnvelope] = []

    def fallback(event: EventEnvelope) -> bytes:
        calls.append(event)
        return b"fallback"

    monkeypatch.setattr(registry, "encode_event", fallback)
    for event in (extras, huge, settled, missing):
        assert encode_plain_event(event) == b"fallback"
    assert calls == [extras, huge, settled, missing]


def _no_fallback(event: EventEnvelope) -> bytes:
    raise AssertionError(f"{event.type} went through encode_event")


def _document(points: int = 12) -> dict[str, Any]:
    return {
        "event_id": str(uuid.UUID(int=7)),
        "type": "points.accrued",
        "version": 1,
        "occurred_at": "2026-03-01T12:00:00.25+02:00",
        "source": "points",
        "customer_id": "c-1",
        "data": {
            "available": -3,
            "pending": 12,
            "debt": 0,
            "lifetime_earned": 40,
            "purchase_count": 2,
            "first_purchase": False,
            "tier": "gold",
            "order_id": "o-1",
            "merchant_id": "m-1",
            "points": points,
            "pending_until": "2026-03-15T10:00:00Z",
            "expires_at": None,
            "campaign_ids": ['r\u00e9sum\u00e9 \u2028 \U0001f600 \\ " \n'],
            "capped": True,
        },
    }


def _accrued(points: int = 12) -> EventEnvelope:
    return decode_event(_document(points))
