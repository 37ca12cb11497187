"""Field types for the edge: money as decimal strings, identifiers, quantities."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

from shared.money import (
    MoneyError,
    currency_exponent,
    is_known_currency,
    parse_decimal_text,
    to_minor_units,
)

# Every event's money and currency fields run these checks, for each event consumed and
# each event built: they were ~40% of decoding a purchase. Each has a fast path for the
# input it is nearly always given, which returns exactly what the full check returns for
# that input (tests/unit/contracts/test_fast_paths.py proves it on a corpus); any other
# input takes the full check, so errors and their messages are unchanged. The validators
# keep their names: pydantic shows them in the location of an error inside a union.
_PLAIN_DECIMAL = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,6})?").fullmatch  # ASCII digits, as published


def _money_text(value: Any) -> Decimal:
    """A plain non-negative decimal string, or the full check."""
    if value.__class__ is str and _PLAIN_DECIMAL(value):
        return Decimal(value)
    return _money_text_checked(value)


def _money_text_checked(value: Any) -> Decimal:
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
    """A known code, or the full check."""
    if value.__class__ is str and is_known_currency(value):
        return value
    return _currency_checked(value)


def _currency_checked(value: Any) -> str:
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
    WithJsonSchema(
        {"type": "string", "pattern": r"^[0-9]{1,15}(\.[0-9]{1,6})?$", "examples": ["12.50"]}
    ),
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


_Check = TypeVar("_Check", bound=Callable[..., Any])
IMPLIED_BY_FAST_MONEY: set[Callable[..., Any]] = set()


def implied_by_fast_money(check: _Check) -> _Check:
    """Mark a model validator that only calls `check_minor_units(amount, currency)` on the
    model's own `Money` and `Currency` fields. The consumer's fast validator
    (shared.contracts.fast) leaves it out, because the money and currencies it takes
    always fit; a validator that checks anything else must not carry this mark."""
    IMPLIED_BY_FAST_MONEY.add(check)
    return check


_QUANTUM = {exponent: Decimal(1).scaleb(-exponent) for exponent in (0, 2, 3)}


def check_minor_units(amount: Decimal, currency: str) -> None:
    """Raise ValueError when `amount` has more decimals than `currency` allows, exactly
    as `minor_units` does; the events' validators call it for every amount.

    Fast path: an amount equal to itself rounded to the currency's minor unit fits (no
    digit beyond it; trailing zeros are fine, as in "12.500" EUR). Anything else, and any
    arithmetic the decimal context refuses, takes `minor_units` for its verdict.
    """
    try:
        if amount.quantize(_QUANTUM[currency_exponent(currency)]) == amount:
            return
    except (MoneyError, ArithmeticError):
        pass
    minor_units(amount, currency)


def minor_units(amount: Decimal, currency: str) -> int:
    """Amount in integer minor units; raises ValueError on sub-minor precision."""
    try:
        return to_minor_units(amount, currency)
    except MoneyError as exc:
        raise ValueError(str(exc)) from exc
