"""Edge validation of point-of-sale events: each bad input gets a precise error."""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from shared.contracts import ContractError, decode_event, derived_event_id, fields
from shared.contracts.pos import PurchaseCompleted, ServiceIncident
from shared.contracts.registry import encode_event, event_fingerprint
from shared.contracts.schemas import event_schemas
from shared.kafka.runtime import Incoming, decode
from shared.money import (
    MoneyError,
    currency_exponent,
    format_money,
    parse_decimal_text,
    to_minor_units,
)
from tests.support.counting import purchase


def _with(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    *parents, last = path.split(".")
    target: dict[str, Any] | list[Any] = changed
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    assert isinstance(target, dict), f"{path} must name a field of an object"
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return changed


_DELETE = object()


def _rejects(event: dict[str, Any] | bytes, code: str, *fragments: str) -> None:
    raw = event if isinstance(event, bytes) else orjson.dumps(event)
    with pytest.raises(ContractError) as caught:
        decode_event(raw)
    assert caught.value.code == code, f"expected {code}, got {caught.value.code}"
    for fragment in fragments:
        assert fragment in caught.value.message, f"{fragment!r} not in {caught.value.message!r}"


def test_valid_purchase_becomes_integer_minor_units() -> None:
    event = decode_event(orjson.dumps(purchase("c1", "12.50")))
    assert isinstance(event, PurchaseCompleted)
    assert event.data.amount_minor == 1250


def test_money_as_json_number_is_refused() -> None:
    _rejects(
        _with(purchase("c1"), "data.amount", 12.5),
        "schema_violation",
        "data.amount",
        "never a JSON number",
    )
    _rejects(_with(purchase("c1"), "data.amount", 12), "schema_violation", "data.amount")


def test_naive_datetime_is_refused() -> None:
    _rejects(
        _with(purchase("c1"), "occurred_at", "2026-11-01T12:00:00"),
        "schema_violation",
        "occurred_at",
        "timezone",
    )


def test_unknown_currency_is_refused() -> None:
    _rejects(
        _with(purchase("c1"), "data.currency", "EUX"),
        "schema_violation",
        "data.currency",
        "unknown currency",
    )


def test_negative_amount_is_refused() -> None:
    _rejects(
        _with(purchase("c1"), "data.amount", "-1.00"), "schema_violation", "data.amount", "negative"
    )


def test_zero_quantity_is_refused() -> None:
    _rejects(
        _with(purchase("c1"), "data.items.0.quantity", 0),
        "schema_violation",
        "data.items.0.quantity",
    )


def test_more_decimals_than_the_currency_allows_is_refused() -> None:
    event = _with(_with(purchase("c1"), "data.currency", "JPY"), "data.amount", "100.5")
    event["data"]["items"] = []
    _rejects(event, "schema_violation", "JPY")


def test_missing_field_is_named() -> None:
    _rejects(
        _with(purchase("c1"), "data.order_id", _DELETE),
        "schema_violation",
        "data.order_id",
        "Field required",
    )


def test_unknown_type_and_version_are_told_apart() -> None:
    _rejects(_with(purchase("c1"), "type", "purchase.teleported"), "unknown_type")
    _rejects(_with(purchase("c1"), "version", 9), "unknown_version")


def test_not_json_and_not_an_object() -> None:
    _rejects(b"\xff{", "not_json")
    _rejects(b"[1, 2]", "schema_violation", "JSON object")


def test_unknown_fields_are_kept_through_a_round_trip() -> None:
    event = purchase("c1")
    event["x_partner"] = "kept"
    event["data"]["loyalty_hint"] = 3
    again = orjson.loads(encode_event(decode_event(orjson.dumps(event))))
    assert again["x_partner"] == "kept" and again["data"]["loyalty_hint"] == 3


def test_fingerprint_tells_a_replay_from_a_conflict() -> None:
    event = purchase("c1")
    same = decode_event(orjson.dumps(event))
    assert event_fingerprint(same) == event_fingerprint(decode_event(orjson.dumps(event)))
    other = decode_event(orjson.dumps(_with(event, "data.amount", "11.00")))
    assert event_fingerprint(same) != event_fingerprint(other)


def test_service_incident_measures_without_floats() -> None:
    incident = {
        "event_id": str(uuid.uuid4()),
        "type": "service.incident",
        "version": 1,
        "occurred_at": "2026-11-01T12:00:00+08:00",
        "source": "kitchen",
        "customer_id": "c1",
        "data": {
            "incident_id": "i1",
            "merchant_id": "m1",
            "promise_kind": "dish_wait_time",
            "measured": {"value": 17, "unit": "minutes"},
            "order_id": "o1",
            "order_amount": "88.00",
            "currency": "CNY",
        },
    }
    decoded = decode_event(orjson.dumps(incident))
    assert isinstance(decoded, ServiceIncident) and decoded.data.order_amount_minor == 8800
    _rejects(_with(incident, "data.measured.value", 17.5), "schema_violation", "float")


def test_derived_ids_are_stable() -> None:
    parent = uuid.uuid4()
    assert derived_event_id(parent, "accrual") == derived_event_id(parent, "accrual")
    assert derived_event_id(parent, "accrual") != derived_event_id(parent, "tier")


def test_every_event_has_a_json_schema_with_string_money() -> None:
    schemas = event_schemas()
    assert {
        "purchase.completed.v1.json",
        "purchase.returned.v1.json",
        "service.incident.v1.json",
    } <= set(schemas)
    amount = schemas["purchase.completed.v1.json"]["$defs"]["PurchaseCompletedData"]["properties"][
        "amount"
    ]
    assert amount["type"] == "string", "money must be published as a decimal string"


@pytest.mark.parametrize(("code", "digits"), [("JPY", 0), ("EUR", 2), ("KWD", 3)])
def test_currency_exponents(code: str, digits: int) -> None:
    assert currency_exponent(code) == digits


def test_minor_unit_conversion_is_exact() -> None:
    from decimal import Decimal

    assert to_minor_units(Decimal("0.10"), "EUR") == 10
    assert format_money(1005, "KWD") == "1.005"
    with pytest.raises(MoneyError):
        to_minor_units(Decimal("0.001"), "EUR")


# Digits other than ASCII 0-9: Python's `\d` and `Decimal` take them, the published
# schemas' patterns (ECMA-262 regular expressions, `\d` = [0-9]) refuse them.
NON_ASCII_DIGITS = [
    "\u0661\u0662.\u0665\u0660",  # Arabic-Indic "12.50"
    "\uff11\uff12.\uff15\uff10",  # fullwidth "12.50"
    "12.5\u0660",  # one Arabic-Indic zero at the end
    "\u09e7",  # Bengali 1
]


@pytest.mark.parametrize("text", NON_ASCII_DIGITS, ids=ascii)
def test_money_with_non_ascii_digits_is_refused_by_the_full_check(text: str) -> None:
    with pytest.raises(MoneyError, match="not a decimal string"):
        parse_decimal_text(text)
    with pytest.raises(MoneyError):
        parse_decimal_text("-" + text)


@pytest.mark.parametrize("text", NON_ASCII_DIGITS, ids=ascii)
def test_money_with_non_ascii_digits_is_refused_by_the_fast_path(text: str) -> None:
    with pytest.raises(ValueError, match="not a decimal string"):
        fields._money_text(text)


@pytest.mark.parametrize("text", NON_ASCII_DIGITS, ids=ascii)
def test_an_event_with_non_ascii_digits_in_money_is_dead_lettered(text: str) -> None:
    _rejects(_with(purchase("c1"), "data.amount", text), "schema_violation", "data.amount")
    _rejects(
        _with(purchase("c1"), "data.items.0.unit_price", text),
        "schema_violation",
        "data.items.0.unit_price",
    )


def test_money_with_a_trailing_newline_is_refused() -> None:
    """`$` in Python matches before a final newline, and `Decimal` strips it: "12.50\\n"
    passed the full check, though the published pattern (ECMA-262) refuses it."""
    with pytest.raises(MoneyError):
        parse_decimal_text("12.50\n")
    _rejects(_with(purchase("c1"), "data.amount", "12.50\n"), "schema_violation", "data.amount")


def test_published_money_pattern_takes_ascii_digits_only() -> None:
    """Read with Python's `re` (as Python JSON Schema validators do), the published
    pattern must refuse what the consumer refuses."""
    schema = event_schemas()["purchase.completed.v1.json"]
    pattern = schema["$defs"]["PurchaseCompletedData"]["properties"]["amount"]["pattern"]
    assert re.search(pattern, "12.50")
    for text in NON_ASCII_DIGITS:
        assert re.search(pattern, text) is None, ascii(text)


def _consumed(value: bytes) -> Incoming:
    return decode(ConsumerRecord("t", 0, 0, 0, 0, b"c1", value, None, 2, len(value), []))


def test_a_replay_re_encoded_by_another_producer_has_the_same_fingerprint() -> None:
    """The consumer tells a replay from a conflicting reuse of an event id by this
    fingerprint: key order and whitespace must not count, every value must."""
    event = purchase("c1", "12.50")
    original = _consumed(orjson.dumps(event))
    reordered = dict(reversed(list(event.items())))
    reordered["data"] = dict(reversed(list(event["data"].items())))
    pretty = orjson.dumps(reordered, option=orjson.OPT_INDENT_2)
    assert pretty != orjson.dumps(event)
    assert original.event is not None and original.poison is None
    assert _consumed(pretty).fingerprint == original.fingerprint
    for path, value in [("data.amount", "12.51"), ("data.items.0.quantity", 2), ("x_new", 1)]:
        assert _consumed(orjson.dumps(_with(event, path, value))).fingerprint != (
            original.fingerprint
        ), path
