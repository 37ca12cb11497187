"""The published `service.incident` schema and the consumer agree on `measured.value`.

Decision: a whole JSON number (17) or a decimal string ("12.5"), like money; a JSON number
with a fraction (12.5) is refused by both, because it is a binary float in most producers.
The check reads the schema as published in docs/schemas, so a producer validating against
it gets the consumer's answer.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from shared.contracts import ContractError, decode_event
from shared.contracts.schemas import event_schemas

PUBLISHED = Path(__file__).parents[3] / "docs" / "schemas" / "service.incident.v1.json"


def _matches(schema: dict[str, Any], value: object) -> bool:
    """The subset of JSON Schema the value's schema uses: anyOf/oneOf, type, bounds, pattern."""
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            hits = sum(_matches(branch, value) for branch in schema[combinator])
            return hits >= 1 if combinator == "anyOf" else hits == 1
    kind = schema.get("type")
    # A JSON number: bool is an int to Python, never a number to JSON Schema.
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind == "integer" and not (number is not None and float(number).is_integer()):
        return False
    if kind == "number" and number is None:
        return False
    if kind == "string" and not isinstance(value, str):
        return False
    if number is not None and "minimum" in schema and number < schema["minimum"]:
        return False
    if number is not None and "maximum" in schema and number > schema["maximum"]:
        return False
    if isinstance(value, str) and "pattern" in schema:
        return re.search(schema["pattern"], value) is not None
    return True


def _consumer_accepts(value: object) -> bool:
    event = {
        "event_id": str(uuid.uuid4()),
        "type": "service.incident",
        "version": 1,
        "occurred_at": "2026-12-01T10:00:00+00:00",
        "source": "ops",
        "customer_id": "c-1",
        "data": {
            "incident_id": "i-1",
            "merchant_id": "m-1",
            "promise_kind": "dish_wait_time",
            "measured": {"value": value, "unit": "minutes"},
            "order_id": "o-1",
            "order_amount": "20.00",
            "currency": "EUR",
        },
    }
    try:
        decode_event(orjson.dumps(event))
    except ContractError:
        return False
    return True


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        (17, True),
        ("12.5", True),
        ("0", True),
        (12.5, False),
        ("1e3", False),
        (-1, False),
        ("\u0661\u0662.\u0665", False),  # Arabic-Indic digits: Python's `\d` takes them
    ],
)
def test_published_schema_and_consumer_agree_on_the_measured_value(
    value: object, accepted: bool
) -> None:
    published = orjson.loads(PUBLISHED.read_bytes())
    schema = published["$defs"]["Measurement"]["properties"]["value"]
    assert _matches(schema, value) is accepted, f"the published schema on {value!r}"
    assert _consumer_accepts(value) is accepted, f"the consumer on {value!r}"


def test_the_published_schema_is_the_one_generated_from_the_model() -> None:
    generated = event_schemas()["service.incident.v1.json"]
    assert orjson.loads(PUBLISHED.read_bytes()) == orjson.loads(orjson.dumps(generated))
