"""The events a compensation emits: held for review, or paid (points, refund, the grant).

Every id is derived from the compensation, so a replayed decision re-derives the same ids.

`compensation.granted` is built once per incident on the consumer's hot path, where
validating it cost ~15-35 µs (pydantic building two models and running the money check):
when every field is of the type and within the rules the contract gives it (`_assemblable`:
the text rules are read from the contract's own fields, never restated), the event is
assembled without validation (`assembled`), and pydantic's serializer still writes its
bytes; anything else takes the validated path, whose error names the field.
tests/unit/rewards/test_assembled_events.py holds the two paths to the same event and bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import annotated_types
from pydantic import BaseModel, WithJsonSchema

from shared.contracts.envelope import EventEnvelope
from shared.contracts.rewards import (
    CompensationGranted,
    CompensationGrantedData,
    CompensationReviewRequired,
    CompensationReviewRequiredData,
    PointsCreditRequested,
    PointsCreditRequestedData,
    RefundInstructed,
    RefundInstructedData,
    rewards_envelope,
    rewards_envelope_fields,
)
from shared.money import format_money, is_known_currency

M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__


def assembled(model: type[M], values: dict[str, Any]) -> M:
    """What `model.model_construct(**values)` returns when `values` holds every field of
    `model` with the type validation would give it, without its per-field Python loop."""
    instance = model.__new__(model)
    _set(instance, "__dict__", values)
    _set(instance, "__pydantic_fields_set__", set(values))
    _set(instance, "__pydantic_extra__", {})
    _set(instance, "__pydantic_private__", None)
    return instance


def text_rule(model: type[BaseModel], field: str) -> Callable[[Any], bool]:
    """Whether a value is a str the contract's `field` accepts (its length and pattern)."""
    low, high, search = 0, 1 << 62, None
    metadata: Sequence[Any] = model.model_fields[field].metadata
    for rule in metadata:
        if isinstance(rule, annotated_types.MinLen):
            low = rule.min_length
        elif isinstance(rule, annotated_types.MaxLen):
            high = rule.max_length
        elif getattr(rule, "pattern", None):
            search = _search(rule.pattern)
        elif isinstance(rule, WithJsonSchema) and rule.json_schema:
            # A type checked in Python (money) states its rule in its schema.
            search = _search(rule.json_schema["pattern"])

    def accepts(value: Any) -> bool:
        if value.__class__ is not str or not low <= len(value) <= high:
            return False
        return search is None or search(value) is not None

    return accepts


def _search(pattern: str) -> Callable[[str], re.Match[str] | None]:
    # pydantic's `$` is the end of the text; Python's would also pass a final "\n".
    return re.compile(re.sub(r"\$$", r"\\Z", pattern)).search


def aware(value: Any) -> bool:
    """A datetime the contract's `AwareDatetime` takes as it is."""
    return value.__class__ is datetime and value.utcoffset() is not None


envelope = rewards_envelope_fields
"""The envelope fields of a rewards event, as `rewards_envelope` validates them."""


customer_id_rule = text_rule(EventEnvelope, "customer_id")
_IDENTIFIER = text_rule(CompensationGrantedData, "merchant_id")
_DECIDED_BY = text_rule(CompensationGrantedData, "decided_by")
_MONEY_TEXT = text_rule(CompensationGrantedData, "refund_amount")
_GRANTED = "compensation.granted"


def _facts(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "compensation_id": str(values["compensation_id"]),
        "merchant_id": values["merchant_id"],
        "order_id": values["order_id"],
        "promise_kind": values["promise_kind"],
        "tier": values["tier"],
        "vouchers": list(values["vouchers"]),
        "points": values["points"],
        "refund_amount": format_money(values["refund_minor"], values["currency"]),
        "currency": values["currency"],
        "top_up": not values["new_breach"],
    }


def review_required(values: dict[str, Any]) -> CompensationReviewRequired:
    """A compensation held for a person, with the caps or rules that held it."""
    data = CompensationReviewRequiredData(**_facts(values), reasons=values["review_reasons"])
    return rewards_envelope(
        CompensationReviewRequired,
        values["customer_id"],
        values["compensation_id"],
        values["created_at"],
        data,
    )


def compensation_granted(values: dict[str, Any], at: datetime) -> CompensationGranted:
    facts = _facts(values)
    if _assemblable(values, facts, at):
        facts["refund_amount"] = Decimal(facts["refund_amount"])
        facts["decided_by"] = values["decided_by"]
        granted = assembled(CompensationGrantedData, facts)
        cause = facts["compensation_id"]  # its text: the same derived id, without a str()
        return assembled(
            CompensationGranted, envelope(_GRANTED, values["customer_id"], cause, at, granted)
        )
    data = CompensationGrantedData(**facts, decided_by=values["decided_by"])
    return rewards_envelope(
        CompensationGranted, values["customer_id"], values["compensation_id"], at, data
    )


def compensation_points(values: dict[str, Any], at: datetime) -> PointsCreditRequested:
    """The points a compensation pays, credited by the points service once."""
    compensation_id = values["compensation_id"]
    data = PointsCreditRequestedData(
        credit_id=f"compensation:{compensation_id}",
        points=values["points"],
        reason=f"compensation: {values['promise_kind']}",
        merchant_id=values["merchant_id"],
    )
    return rewards_envelope(PointsCreditRequested, values["customer_id"], compensation_id, at, data)


def refund_instructed(values: dict[str, Any], at: datetime) -> RefundInstructed:
    data = RefundInstructedData(
        compensation_id=str(values["compensation_id"]),
        merchant_id=values["merchant_id"],
        order_id=values["order_id"],
        amount=format_money(values["refund_minor"], values["currency"]),
        currency=values["currency"],
    )
    return rewards_envelope(
        RefundInstructed, values["customer_id"], values["compensation_id"], at, data
    )


def _assemblable(values: dict[str, Any], facts: dict[str, Any], at: datetime) -> bool:
    """Every field of `compensation.granted` within its contract (see the module's doc);
    the refund as `format_money` wrote it, so with the currency's precision exactly."""
    tier, points = facts["tier"], facts["points"]
    return (
        tier.__class__ is int
        and tier >= 1
        and points.__class__ is int
        and points >= 0
        and values["new_breach"].__class__ is bool
        and _MONEY_TEXT(facts["refund_amount"])
        and is_known_currency(facts["currency"])
        and customer_id_rule(values["customer_id"])
        and _IDENTIFIER(facts["compensation_id"])
        and _IDENTIFIER(facts["merchant_id"])
        and _IDENTIFIER(facts["order_id"])
        and _IDENTIFIER(facts["promise_kind"])
        and all(_IDENTIFIER(code) for code in facts["vouchers"])
        and _DECIDED_BY(values["decided_by"])
        and aware(at)
    )
