"""Events encoded without validation are the bytes of the events validation builds.

`encoded_points_event` skips the contract's validation on the accrual hot path. That is
sound only while (1) every integer bound of the contract is checked before encoding,
(2) every constrained text field is copied from an inbound field with the very same
constraints, and (3) the bytes are the validated event's: the ones its encoder writes,
and the contract reads them back as that event. Each is checked here, so a contract
change that breaks the reasoning fails a test instead of publishing an event the
contract refuses.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from services.points.domain.book import Account
from services.points.domain.tiers import Tier
from services.points.ledger.events import _bounds_check, encoded_points_event, points_event
from shared.contracts.envelope import EventEnvelope
from shared.contracts.points import (
    AccountSnapshot,
    PointsAccrued,
    PointsAccruedData,
    PointsCredited,
    PointsCreditedData,
    TierName,
)
from shared.contracts.pos import PurchaseCompleted, PurchaseCompletedData
from shared.contracts.registry import decode_event, encode_event
from shared.contracts.rewards import PointsCreditRequested, PointsCreditRequestedData
from shared.outbox import EncodedEvent

# Outgoing text fields with constraints -> the inbound field each one is copied from.
COPIED_FROM: dict[type[BaseModel], dict[str, tuple[type[BaseModel], str]]] = {
    PointsAccruedData: {
        "order_id": (PurchaseCompletedData, "order_id"),
        "merchant_id": (PurchaseCompletedData, "merchant_id"),
    },
    PointsCreditedData: {
        "credit_id": (PointsCreditRequestedData, "credit_id"),
        "reason": (PointsCreditRequestedData, "reason"),
        "merchant_id": (PointsCreditRequestedData, "merchant_id"),
    },
}


def _is_numeric(field: Any) -> bool:
    return field.annotation in (int, int | None)


@pytest.mark.parametrize("data_model", list(COPIED_FROM), ids=lambda m: m.__name__)
def test_constrained_text_is_copied_from_a_field_with_the_same_constraints(
    data_model: type[BaseModel],
) -> None:
    for name, field in data_model.model_fields.items():
        if not field.metadata or _is_numeric(field) or name in AccountSnapshot.model_fields:
            continue
        assert name in COPIED_FROM[data_model], (
            f"{data_model.__name__}.{name} has constraints that encoding does not check"
        )
        source, source_name = COPIED_FROM[data_model][name]
        inbound = source.model_fields[source_name]
        assert (field.annotation, field.metadata) == (inbound.annotation, inbound.metadata), (
            f"{data_model.__name__}.{name} is no longer constrained like "
            f"{source.__name__}.{source_name}, so copying it may break the contract"
        )


@pytest.mark.parametrize(
    ("outgoing", "inbound"),
    [(PointsAccrued, PurchaseCompleted), (PointsCredited, PointsCreditRequested)],
    ids=["accrued", "credited"],
)
def test_the_customer_id_is_constrained_like_the_inbound_one(
    outgoing: type[EventEnvelope], inbound: type[EventEnvelope]
) -> None:
    ours, theirs = outgoing.model_fields["customer_id"], inbound.model_fields["customer_id"]
    assert (ours.annotation, ours.metadata) == (theirs.annotation, theirs.metadata)


_counts = st.integers(min_value=0, max_value=2**40)
_moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def _snapshot(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "available": draw(st.integers(min_value=-(2**40), max_value=2**40)),
        "pending": draw(_counts),
        "debt": draw(_counts),
        "lifetime_earned": draw(st.integers(min_value=-(2**40), max_value=2**40)),
        "purchase_count": draw(_counts),
        "first_purchase": draw(st.booleans()),
        "tier": TierName(draw(st.sampled_from(list(Tier))).value),  # as `snapshot` gives it
    }


@st.composite
def _accrued(draw: st.DrawFn) -> tuple[type[EventEnvelope], str, datetime, dict[str, Any]]:
    earned = draw(st.booleans())
    data = _snapshot(draw) | {
        "order_id": draw(st.from_regex(r"\A[A-Za-z0-9._:@/-]{1,20}\Z")),
        "merchant_id": "grocer",
        "points": draw(_counts) if earned else 0,
        "pending_until": draw(_moments) if earned else None,
        "expires_at": draw(_moments) if earned else None,
        "campaign_ids": draw(st.lists(st.text(max_size=10), max_size=3)),
        "capped": draw(st.booleans()),
    }
    return PointsAccrued, "points.accrued", draw(_moments), data


@st.composite
def _credited(draw: st.DrawFn) -> tuple[type[EventEnvelope], str, datetime, dict[str, Any]]:
    data = _snapshot(draw) | {
        "credit_id": "credit-1",
        "points": draw(st.integers(min_value=1, max_value=10**8)),
        "reason": draw(st.text(min_size=1, max_size=30)),
        "merchant_id": draw(st.none() | st.just("m-1")),
    }
    return PointsCredited, "points.credited", draw(_moments), data


@settings(max_examples=200, deadline=None)
@given(case=_accrued() | _credited(), cause=st.uuids())
def test_an_encoded_event_is_the_validated_event(
    case: tuple[type[EventEnvelope], str, datetime, dict[str, Any]], cause: uuid.UUID
) -> None:
    model, event_type, at, data = case
    account = Account("customer-1")
    validated = points_event(model, event_type, cause, account, at, dict(data))
    encoded = encoded_points_event(model, event_type, cause, account, at, dict(data))
    assert encoded.value == encode_event(validated)
    assert encoded.key == b"customer-1"
    read = decode_event(encoded.value)
    assert type(read) is model and read == validated


def _credit(**changed: Any) -> dict[str, Any]:
    """A `points.credited` event's data, with the fields `changed`."""
    return {
        "available": 0,
        "pending": 0,
        "debt": 0,
        "lifetime_earned": 0,
        "purchase_count": 1,
        "first_purchase": False,
        "tier": TierName.MEMBER,
        "credit_id": "credit-1",
        "points": 10,
        "reason": "goodwill",
        "merchant_id": None,
    } | changed


def _encoded_credit(data: dict[str, Any]) -> EncodedEvent:
    at = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=1)
    return encoded_points_event(
        PointsCredited, "points.credited", uuid.UUID(int=3), Account("c"), at, data
    )


@pytest.mark.parametrize(
    ("field", "value"), [("debt", -1), ("pending", -5), ("purchase_count", -1), ("points", 0)]
)
def test_a_broken_bound_is_refused_with_its_field_named(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        _encoded_credit(_credit(**{field: value}))


def test_data_missing_a_field_is_validated_and_gets_its_default() -> None:
    data = _credit()
    del data["first_purchase"]
    encoded = _encoded_credit(data)
    event = decode_event(encoded.value)
    assert isinstance(event, PointsCredited) and event.data.first_purchase is False


def test_a_value_orjson_cannot_write_goes_through_validation() -> None:
    as_int = _encoded_credit(_credit())
    # within its bounds, but not a type orjson writes
    assert _encoded_credit(_credit(points=Decimal(10))) == as_int
    assert b'"points":10,' in as_int.value


_BOUNDS = [
    ("ge_0", 0.0, math.inf),
    ("gt_0", math.nextafter(0.0, math.inf), math.inf),
    ("le_10", -math.inf, 10.0),
    ("between", 1.0, 2.0),
]


def _reference_within(data: dict[str, Any], bounds: list[tuple[str, float, float]]) -> bool:
    """The bounds check as a loop, the way it was written before it was generated."""
    for name, low, high in bounds:
        value = data[name]
        if value is None or not low <= value <= high:
            return False
    return True


@given(
    values=st.fixed_dictionaries(
        {name: st.one_of(st.none(), st.integers(-3, 12)) for name, _, _ in _BOUNDS}
    )
)
def test_the_generated_bounds_check_agrees_with_the_loop(values: dict[str, Any]) -> None:
    within = _bounds_check(_BOUNDS)
    assert within(values) == _reference_within(values, _BOUNDS)
    assert _bounds_check([])(values)
