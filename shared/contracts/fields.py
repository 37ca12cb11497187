"""Field types for the edge: money as decimal strings, identifiers, quantities."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

from shared.money import MoneyError, currency_exponent, parse_decimal_text, to_minor_units


def _money_text(value: Any) -> Decimal:
    if isinstance(value, bool | float | int):
        raise ValueError('money must be a decimal string such as "12.50", never a JSON number')
    if not isinstance(value, str):
        raise ValueError('money must be a decimal string such as "12.50"')
    try:
        amount = parse_decimal_text(value)
    except MoneyError as exc:
        raise ValueError(str(exc)) from exc
    if amount < 0:
        raise ValueError("amount must not be negative")
    return amount


def _currency(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError('currency must be an ISO 4217 code such as "EUR"')
    try:
        currency_exponent(value)
    except MoneyError as exc:
        raise ValueError(str(exc)) from exc
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_money_text),
    PlainSerializer(lambda d: str(d), return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,15}(\.\d{1,6})?$", "examples": ["12.50"]}),
]
"""Non-negative decimal amount written as a string (never a JSON number)."""

Currency = Annotated[
    str,
    BeforeValidator(_currency),
    WithJsonSchema({"type": "string", "pattern": "^[A-Z]{3}$", "examples": ["EUR"]}),
]
"""ISO 4217 alphabetic code."""

Identifier = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:@/-]+$")]
Quantity = Annotated[int, Field(strict=True, ge=1, le=1_000_000)]


def minor_units(amount: Decimal, currency: str) -> int:
    """Amount in integer minor units; raises ValueError on sub-minor precision."""
    try:
        return to_minor_units(amount, currency)
    except MoneyError as exc:
        raise ValueError(str(exc)) from exc
