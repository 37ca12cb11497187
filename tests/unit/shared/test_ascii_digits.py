"""Decimal text in HTTP bodies takes ASCII digits only, as the published OpenAPI patterns
say: pydantic-core's `\\d` matches the digits of every script, and `Decimal` reads them,
so Arabic-Indic "12.50" would otherwise pass as 12.50."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from services.alerts.lapse.schemas import MoneyText as AlertsMoneyText
from services.points.rules.schemas import Factor, MoneyText

FIELDS: list[Any] = [Factor, MoneyText, AlertsMoneyText]
NOT_ASCII = [
    "\u0661\u0662.\u0665\u0660",  # Arabic-Indic "12.50"
    "\uff11\uff12.\uff15\uff10",  # fullwidth "12.50"
    "12.\uff150",  # one fullwidth digit
    "\u06f1\u06f2",  # Persian "12"
]


@pytest.mark.parametrize("field", FIELDS)
def test_ascii_decimal_text_is_taken(field: Any) -> None:
    assert TypeAdapter(field).validate_python("12.5") == "12.5"


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("text", NOT_ASCII)
def test_digits_of_other_scripts_are_refused(field: Any, text: str) -> None:
    with pytest.raises(ValidationError, match="pattern"):
        TypeAdapter(field).validate_python(text)
