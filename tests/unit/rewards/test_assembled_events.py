"""`compensation.granted` and `reward.issued` assembled without validation are the events
the validated path builds: equal, with the same bytes on the topic, for any values; and
values the contract refuses still take the validated path and fail there, naming the field.

The reference is the builders as they were: the contract's models validating the data.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.rewards.compensation import events as compensation_events
from services.rewards.compensation.events import compensation_granted
from services.rewards.vouchers import events as voucher_events
from services.rewards.vouchers.events import reward_issued
from shared.contracts.envelope import EventEnvelope
from shared.contracts.registry import encode_event
from shared.contracts.rewards import (
    CompensationGranted,
    CompensationGrantedData,
    RewardIssued,
    RewardIssuedData,
    rewards_envelope,
)
from shared.money import format_money

AT = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def validated_granted(values: dict[str, Any], at: datetime) -> CompensationGranted:
    data = CompensationGrantedData(
        compensation_id=str(values["compensation_id"]),
        merchant_id=values["merchant_id"],
        order_id=values["order_id"],
        promise_kind=values["promise_kind"],
        tier=values["tier"],
        vouchers=list(values["vouchers"]),
        points=values["points"],
        refund_amount=format_money(values["refund_minor"], values["currency"]),
        currency=values["currency"],
        top_up=not values["new_breach"],
        decided_by=values["decided_by"],
    )
    return rewards_envelope(
        CompensationGranted, values["customer_id"], values["compensation_id"], at, data
    )


def validated_issued(row: dict[str, Any]) -> RewardIssued:
    data = RewardIssuedData(
        voucher_id=str(row["voucher_id"]),
        reward_code=row["reward_code"],
        origin=row["origin"],
        origin_ref=row["origin_ref"],
        merchant_id=row["merchant_id"],
        issued_at=row["issued_at"],
        expires_at=row["expires_at"],
    )
    return rewards_envelope(
        RewardIssued, row["customer_id"], row["voucher_id"], row["issued_at"], data
    )


def granted_values(**changes: Any) -> dict[str, Any]:
    values = {
        "compensation_id": uuid.UUID("0a2cf286-1336-419b-b921-9f6c2866039e"),
        "customer_id": "c-1",
        "merchant_id": "hotel-restaurant",
        "order_id": "o-17",
        "promise_kind": "dish_wait_time",
        "tier": 2,
        "vouchers": ["fruit-plate"],
        "points": 0,
        "refund_minor": 1600,
        "currency": "EUR",
        "new_breach": True,
        "decided_by": "policy",
    }
    return values | changes


def voucher_row(**changes: Any) -> dict[str, Any]:
    row = {
        "voucher_id": uuid.UUID("fe74b92c-802c-4ba3-ade3-8b8313019312"),
        "customer_id": "c-1",
        "reward_code": "fruit-plate",
        "origin": "guarantee",
        "origin_ref": "compensation:0a2cf286-1336-419b-b921-9f6c2866039e:fruit-plate",
        "merchant_id": "hotel-restaurant",
        "issued_at": AT,
        "expires_at": AT + timedelta(days=30),
    }
    return row | changes


def same_outcome(built: Any, reference: Any) -> None:
    """Both raise the same error (a validation error naming the same fields), or both
    give one event."""
    try:
        expected: EventEnvelope = reference()
    except Exception as refused:  # whatever it is, the other path must raise it too
        with pytest.raises(type(refused)) as error:
            built()
        if isinstance(refused, ValidationError):
            assert isinstance(error.value, ValidationError)
            fields = {e["loc"] for e in error.value.errors()}
            assert fields == {e["loc"] for e in refused.errors()}
        return
    event = built()
    assert event == expected
    assert event.data == expected.data
    assert encode_event(event) == encode_event(expected)
    assert event.model_dump() == expected.model_dump()


def test_the_hot_path_values_are_assembled() -> None:
    """What the bench and the service send is assembled (the differential tests below
    would pass vacuously if nothing ever was)."""
    values = granted_values()
    facts = compensation_events._facts(values)
    assert compensation_events._assemblable(values, facts, AT)
    row = voucher_row()
    assert voucher_events._assemblable(row, str(row["voucher_id"]))
    same_outcome(lambda: compensation_granted(values, AT), lambda: validated_granted(values, AT))
    same_outcome(lambda: reward_issued(row), lambda: validated_issued(row))


texts = st.one_of(  # mostly identifiers, as the service sends, and their near misses
    st.from_regex(r"[A-Za-z0-9._:@/-]{1,100}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9._:@-]{1,64}", fullmatch=True),
    st.sampled_from(["m1", "hotel-restaurant", "a/b", "x:y@z", "a b", "", "é", "ab\n", "-"]),
    st.text(min_size=0, max_size=110),
    st.text(alphabet="abc-._:@/", min_size=95, max_size=105),
)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)), None]
)
moments = st.builds(
    lambda seconds, micro, zone: (AT + timedelta(seconds=seconds)).replace(
        microsecond=micro, tzinfo=zone
    ),
    st.integers(-(10**8), 10**8),
    st.sampled_from([0, 1, 250_000, 999_999]),
    zones,
)


@settings(max_examples=300, deadline=None)
@given(
    customer=texts,
    merchant=texts,
    order=texts,
    promise=st.sampled_from(["dish_wait_time", "check_in_time", "no such"]),
    tier=st.integers(-1, 12),
    vouchers=st.lists(texts, max_size=3),
    points=st.integers(-5, 10**9),
    refund=st.one_of(st.integers(0, 10**9), st.sampled_from([-1, 10**17, 10**21])),
    currency=st.sampled_from(["EUR", "JPY", "KWD", "XXX", "eur"]),
    new_breach=st.booleans(),
    decided_by=st.one_of(st.sampled_from(["policy", "admin:kim", ""]), st.text(max_size=210)),
    at=moments,
)
def test_compensation_granted_is_the_validated_event(**drawn: Any) -> None:
    values = granted_values(
        customer_id=drawn["customer"],
        merchant_id=drawn["merchant"],
        order_id=drawn["order"],
        promise_kind=drawn["promise"],
        tier=drawn["tier"],
        vouchers=drawn["vouchers"],
        points=drawn["points"],
        refund_minor=drawn["refund"],
        currency=drawn["currency"],
        new_breach=drawn["new_breach"],
        decided_by=drawn["decided_by"],
    )
    at = drawn["at"]
    same_outcome(lambda: compensation_granted(values, at), lambda: validated_granted(values, at))


@settings(max_examples=300, deadline=None)
@given(
    customer=texts,
    code=texts,
    origin=st.sampled_from(["guarantee", "catalogue", "milestone", "referral", "gift"]),
    origin_ref=st.one_of(texts, st.text(min_size=295, max_size=305)),
    merchant=st.one_of(st.none(), texts),
    issued=moments,
    expires=moments,
)
def test_reward_issued_is_the_validated_event(**drawn: Any) -> None:
    row = voucher_row(
        customer_id=drawn["customer"],
        reward_code=drawn["code"],
        origin=drawn["origin"],
        origin_ref=drawn["origin_ref"],
        merchant_id=drawn["merchant"],
        issued_at=drawn["issued"],
        expires_at=drawn["expires"],
    )
    same_outcome(lambda: reward_issued(row), lambda: validated_issued(row))


GRANTED_FIELDS = {
    "customer_id": texts,
    "merchant_id": texts,
    "order_id": texts,
    "vouchers": st.lists(texts, max_size=3),
    "tier": st.integers(-1, 3),
    "points": st.integers(-2, 10**9),
    "refund_minor": st.sampled_from([-1, 0, 1, 10**17 - 1, 10**17, 10**21]),
    "currency": st.sampled_from(["JPY", "KWD", "eur"]),
    "decided_by": st.text(max_size=205),
}


@settings(max_examples=400, deadline=None)
@given(data=st.data(), field=st.sampled_from(sorted(GRANTED_FIELDS)), at=moments)
def test_one_field_off_the_hot_path_values_is_the_validated_event(
    data: st.DataObject, field: str, at: datetime
) -> None:
    """The service's values with one field changed: the guard decides at each boundary."""
    values = granted_values(**{field: data.draw(GRANTED_FIELDS[field])})
    same_outcome(lambda: compensation_granted(values, at), lambda: validated_granted(values, at))
