"""A second, faster validator per event model, for the input it nearly always sees.

Validating a purchase spent about 40% of its time in our own Python checks of money:
a Python validator per amount and per currency, and a Python `model_validator` per data
model checking each amount's decimals against the currency. For the input producers
actually send (an amount such as "12.50", a currency with cents) all three are
expressible in pydantic-core's own, compiled, validators. `fast_validator(model)` builds,
from the model's own core schema, a validator that differs in three places only:

- money is taken only as a string of ASCII digits with at most two decimals (a pattern,
  matched in Rust), then `Decimal(text)`, which is what `fields._money_text` returns for
  such a string;
- a currency is taken only among the ISO 4217 codes with two or three minor-unit digits
  (a literal: one hash lookup);
- so the precision validators marked `@fields.implied_by_fast_money` are left out: an
  amount with at most two decimals fits any currency with two or three minor units.

Everything else (envelope, identifiers, quantities, unknown fields kept, the model
classes) is the model's own schema. So the fast validator accepts a subset of what the
model accepts and, for it, builds the same objects of the same classes: the decoder
tries it first and hands anything it refuses (a bad event, or a good one outside the
common case, such as JPY or "12.500") to the model's own validator, whose verdict and
error messages are the contract's. tests/unit/contracts/test_fast_paths.py holds the
decoder to the model's validator on a corpus of good, bad and borderline events.

Measured on the bench's purchases (`tests` aside, a loop over `validate_python`):
8.5-9.0 µs per purchase with the model's validator, 5.4-5.7 µs with this one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from pydantic_core import SchemaValidator
from pydantic_core import core_schema as cs

from shared.contracts import fields
from shared.money import currency_exponent, known_currencies

# At most two decimals: within the published pattern (up to six) and within the
# precision of every currency the fast path takes.
FAST_MONEY_PATTERN = r"^[0-9]{1,15}(\.[0-9]{1,2})?$"
FAST_CURRENCIES = sorted(code for code in known_currencies() if currency_exponent(code) >= 2)

_FAST_MONEY = cs.no_info_after_validator_function(
    Decimal, cs.str_schema(strict=True, pattern=FAST_MONEY_PATTERN)
)
_FAST_CURRENCY = cs.literal_schema(FAST_CURRENCIES)


def fast_validator(model: type[BaseModel]) -> SchemaValidator | None:
    """The fast validator of `model`, or None when its schema has nothing to speed up."""
    rewrite = _Rewrite()
    schema = rewrite.node(model.__pydantic_core_schema__)
    if not rewrite.changed:
        return None
    with _own_schemas(_model_classes(schema)):
        return SchemaValidator(schema)


class _Rewrite:
    """Copies a core schema, replacing the money and currency checks and dropping the
    precision checks they imply; never touches the model's own schema."""

    def __init__(self) -> None:
        self.changed = 0

    def node(self, node: Any) -> Any:
        if isinstance(node, dict):
            return self._schema(node)
        if isinstance(node, list | tuple):
            return type(node)(self.node(child) for child in node)
        return node

    def _schema(self, node: dict[str, Any]) -> Any:
        check = _python_check(node)
        if check is not None:
            if node["type"] == "function-before" and check is fields._money_text:
                self.changed += 1
                return _FAST_MONEY
            if node["type"] == "function-before" and check is fields._currency:
                self.changed += 1
                return _FAST_CURRENCY
            if node["type"] == "function-after" and check in fields.IMPLIED_BY_FAST_MONEY:
                self.changed += 1
                return self.node(node["schema"])
        return {
            key: value if key in ("metadata", "serialization") else self.node(value)
            for key, value in node.items()
        }


def _python_check(node: dict[str, Any]) -> Callable[..., Any] | None:
    function = node.get("function")
    if node.get("type") in ("function-before", "function-after") and isinstance(function, dict):
        return function.get("function")
    return None


def _model_classes(node: Any) -> Iterator[type[BaseModel]]:
    if isinstance(node, dict):
        if node.get("type") == "model":
            yield node["cls"]
        for value in node.values():
            yield from _model_classes(value)
    elif isinstance(node, list | tuple):
        for child in node:
            yield from _model_classes(child)


@contextmanager
def _own_schemas(classes: Iterator[type[BaseModel]]) -> Iterator[None]:
    """pydantic-core builds a `model` schema whose class is complete with that class's
    existing validator, ignoring the schema it is given; marking the classes incomplete
    while the fast validator is built makes it build the rewritten schema instead.
    (Should a later pydantic-core ignore the mark, the fast validator would be the
    model's own: slower, never wrong.) Runs at import, once per event model."""
    marked = {cls: cls.__dict__.get("__pydantic_complete__", False) for cls in classes}
    for cls in marked:
        type.__setattr__(cls, "__pydantic_complete__", False)
    try:
        yield
    finally:
        for cls, complete in marked.items():
            type.__setattr__(cls, "__pydantic_complete__", complete)
