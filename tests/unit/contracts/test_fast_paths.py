"""The contracts' fast paths decide exactly as the full checks they shortcut.

Money, currency and minor-unit precision run for every field of every event, so each has
a shortcut for the input it nearly always sees (shared.contracts.fields). Two proofs:
- each shortcut against its full check, value by value, on hand-made edge cases and on
  hypothesis' search of the input space: same value (same Decimal digits and exponent) or
  the same error message;
- whole point-of-sale events, decoded by the contracts and by reference models built the
  way they were before the shortcuts (the full checks as validators), over a corpus: the
  bench's purchases, a return and an incident, and every field of each replaced by each
  of a pool of bad and borderline values, or removed, or joined by an unknown field. Both
  accept with the same values or both reject with the same ContractError code and message;
- the consumer's fast validators (shared.contracts.fast) against each model's own
  validator, on a valid document of every event they serve mutated the same way: what a
  fast validator accepts, the model accepts, with the same classes, values, unknown
  fields and fields set; and the common case does take the fast validator.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from bench.workload import make_purchases
from shared.contracts import ContractError, decode_event
from shared.contracts import fields as f
from shared.contracts.fast import _Rewrite
from shared.contracts.pos import (
    PurchaseCompleted,
    PurchaseCompletedData,
    PurchaseItem,
    PurchaseReturned,
    PurchaseReturnedData,
    ReturnedItem,
    ServiceIncident,
    ServiceIncidentData,
)
from shared.contracts.registry import FAST_VALIDATORS, _describe, _model_for
from shared.money import known_currencies


# -- the reference: the validators as they were, without shortcuts ------------------------
def _money_text(value: Any) -> Decimal:  # same name: pydantic shows it in union errors
    return f._money_text_checked(value)


def _currency(value: Any) -> str:
    return f._currency_checked(value)


RefMoney = Annotated[
    Decimal,
    BeforeValidator(_money_text),
    PlainSerializer(lambda d: str(d), return_type=str, when_used="always"),
]
RefCurrency = Annotated[str, BeforeValidator(_currency)]


class RefItem(PurchaseItem):
    unit_price: RefMoney


class RefCompletedData(PurchaseCompletedData):
    amount: RefMoney
    currency: RefCurrency
    items: list[RefItem] = Field(default_factory=list, max_length=1000)  # type: ignore[assignment]

    @model_validator(mode="after")
    def _precision_fits_currency(self) -> RefCompletedData:
        f.minor_units(self.amount, self.currency)
        for item in self.items:
            f.minor_units(item.unit_price, self.currency)
        return self


class RefReturnedItem(ReturnedItem):
    unit_price: RefMoney | None = None


class RefReturnedData(PurchaseReturnedData):
    refunded_amount: RefMoney
    currency: RefCurrency
    items: list[RefReturnedItem] = Field(default_factory=list, max_length=1000)  # type: ignore[assignment]

    @model_validator(mode="after")
    def _precision_fits_currency(self) -> RefReturnedData:
        f.minor_units(self.refunded_amount, self.currency)
        return self


class RefIncidentData(ServiceIncidentData):
    order_amount: RefMoney
    currency: RefCurrency

    @model_validator(mode="after")
    def _precision_fits_currency(self) -> RefIncidentData:
        f.minor_units(self.order_amount, self.currency)
        return self


class RefCompleted(PurchaseCompleted):
    data: RefCompletedData


class RefReturned(PurchaseReturned):
    data: RefReturnedData


class RefIncident(ServiceIncident):
    data: RefIncidentData


REFERENCE = {PurchaseCompleted: RefCompleted, PurchaseReturned: RefReturned}
REFERENCE[ServiceIncident] = RefIncident


RENAMED = {
    "RefCompletedData": "PurchaseCompletedData",
    "RefReturnedData": "PurchaseReturnedData",
    "RefIncidentData": "ServiceIncidentData",
    "RefReturnedItem": "ReturnedItem",
    "RefItem": "PurchaseItem",
}


def reference_decode(raw: bytes) -> Any:
    """decode_event as it was: the same steps, with the reference models."""
    document = orjson.loads(raw)
    model = REFERENCE[_model_for(document)]
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise ContractError("schema_violation", _describe(exc)) from exc


def _outcome(decode: Callable[[bytes], Any], raw: bytes) -> tuple[str, str]:
    try:
        event = decode(raw)
    except ContractError as exc:
        message = exc.message
        for reference, original in RENAMED.items():  # pydantic names the class in a message
            message = message.replace(reference, original)
        return ("rejected " + exc.code, message)
    # repr keeps what == would forgive: Decimal('12.50') vs Decimal('12.5'), tz classes
    return ("accepted", repr(event.model_dump()) + repr(event.__pydantic_extra__))


# -- the corpus ---------------------------------------------------------------------------
RETURN = {
    "event_id": "0b7c3f1e-0000-4000-8000-000000000001",
    "type": "purchase.returned",
    "version": 1,
    "occurred_at": "2026-11-02T09:30:00+01:00",
    "source": "pos-1",
    "customer_id": "c-1",
    "data": {
        "return_id": "r-1",
        "order_id": "o-1",
        "merchant_id": "m-1",
        "refunded_amount": "5.50",
        "currency": "EUR",
        "items": [
            {"sku": "sku-1", "quantity": 1, "unit_price": "5.50"},
            {"sku": "s2", "quantity": 2},
        ],
    },
}
INCIDENT = {
    "event_id": "0b7c3f1e-0000-4000-8000-000000000002",
    "type": "service.incident",
    "version": 1,
    "occurred_at": "2026-11-01T12:00:00Z",
    "source": "kitchen",
    "customer_id": "c-1",
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
DELETE = object()
POOL: list[Any] = [
    DELETE,
    None,
    True,
    0,
    -1,
    12,
    12.5,
    1e3,
    1_000_001,
    [],
    {},
    "",
    " ",
    "1",
    "12.5",
    "12.50",
    "12.500",
    "12.505",
    "0.000001",
    "0.0000001",
    "-1.00",
    "-0.00",
    "+1.00",
    "1e3",
    "1E+2",
    "NaN",
    "Infinity",
    " 12.50",
    "12.50\n",
    "12,50",
    ".5",
    "5.",
    "1_000",
    "\u0661\u0662\u066b\u0665",  # Arabic-Indic digits: \d matches them
    "\u0661\u0662.\u0665",
    "9" * 15,
    "9" * 16,
    "9" * 15 + ".999999",
    "EUR",
    "eur",
    "EUX",
    "JPY",
    "KWD",
    "EUR ",
    "x" * 64,
    "x" * 65,
    "x" * 101,
    "bad id!",
    "ok:id@x/y-z.1",
    "2026-11-01T12:00:00",
    "2026-11-01T12:00:00Z",
    "2026-11-01 12:00:00+02:00",
    1_700_000_000,
    "not-a-uuid",
    "0B7C3F1E000040008000000000000009",
    "in_store",
    "teleport",
    "minutes",
    [{"sku": "s", "category": "c", "quantity": 1, "unit_price": "1.001"}],
    [{"sku": "s", "category": "c", "quantity": 1, "unit_price": 1}],
    [{"sku": "s", "category": "c", "quantity": 1, "unit_price": "1.00"}] * 1001,
    {"value": "12.5", "unit": "minutes"},
    {"value": 12.5, "unit": "minutes"},
]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list) and node:
        yield (*prefix, 0)
        yield from _paths(node[0], (*prefix, 0))


def _replaced(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


def corpus() -> Iterator[bytes]:
    bases = [orjson.loads(v) for v in make_purchases(40).values] + [RETURN, INCIDENT]
    yield from (orjson.dumps(b) for b in bases)
    for base in bases[-3:]:
        for path in _paths(base):
            for value in POOL:
                yield orjson.dumps(_replaced(base, path, value))
            if isinstance(path[-1], str):
                yield orjson.dumps(_replaced(base, (*path[:-1], "x_unknown"), {"kept": 1}))


def test_whole_events_decode_as_before() -> None:
    accepted = rejected = 0
    for raw in corpus():
        new, old = _outcome(decode_event, raw), _outcome(reference_decode, raw)
        assert new == old, raw[:300]
        accepted += new[0] == "accepted"
        rejected += new[0] != "accepted"
    assert accepted > 200 and rejected > 500, "the corpus exercises both verdicts"


# -- each shortcut against its full check ---------------------------------------------------
def _verdict(check: Callable[..., Any], *args: Any) -> str:
    try:
        return "ok " + repr(check(*args))
    except ValueError as exc:
        return f"error {exc}"


MONEY_SAMPLES = [v for v in POOL if v is not DELETE and not isinstance(v, list | dict)]


@pytest.mark.parametrize("value", MONEY_SAMPLES, ids=repr)
def test_money_shortcut_matches_the_full_check(value: Any) -> None:
    assert _verdict(f._money_text, value) == _verdict(f._money_text_checked, value)
    assert _verdict(f._currency, value) == _verdict(f._currency_checked, value)


@given(st.one_of(st.text(alphabet="0123456789.-+eE _\n\u0661", max_size=24), st.text(max_size=8)))
def test_money_shortcut_matches_on_any_text(value: str) -> None:
    assert _verdict(f._money_text, value) == _verdict(f._money_text_checked, value)
    assert _verdict(f._currency, value) == _verdict(f._currency_checked, value)


CURRENCIES = ["EUR", "JPY", "KWD", "EUX", ""]


@pytest.mark.parametrize("currency", CURRENCIES)
@pytest.mark.parametrize(
    "amount",
    ["0", "-0.00", "12", "12.5", "12.50", "12.500", "12.505", "0.001", "1E+2", "1E-7", "9" * 40],
)
def test_precision_shortcut_matches_minor_units(amount: str, currency: str) -> None:
    _same_precision_verdict(Decimal(amount), currency)


@given(st.decimals(allow_nan=False, allow_infinity=False), st.sampled_from(CURRENCIES))
def test_precision_shortcut_matches_on_any_decimal(amount: Decimal, currency: str) -> None:
    _same_precision_verdict(amount, currency)


def _same_precision_verdict(amount: Decimal, currency: str) -> None:
    full = _verdict(f.minor_units, amount, currency)
    fast = _verdict(f.check_minor_units, amount, currency)
    assert fast == ("ok None" if full.startswith("ok") else full)


# -- the fast validators (shared.contracts.fast) against the models' own ------------------
# A valid document of every event model that has a fast validator; each is mutated like
# the point-of-sale events above (every field replaced by each value of POOL, removed, or
# joined by an unknown field).
_ENVELOPE = {
    "version": 1,
    "occurred_at": "2026-11-01T12:00:00+01:00",
    "source": "svc",
    "customer_id": "c-1",
}
_SNAPSHOT = {
    "available": 120,
    "pending": 30,
    "debt": 0,
    "lifetime_earned": 150,
    "purchase_count": 3,
    "tier": "silver",
}
_BREACH = {
    "compensation_id": "k-1",
    "merchant_id": "m-1",
    "order_id": "o-1",
    "promise_kind": "dish_wait_time",
    "tier": 2,
    "vouchers": ["V-1"],
    "points": 200,
    "refund_amount": "4.50",
    "currency": "EUR",
    "top_up": False,
}
_OUTGOING_ALERTS = Path(__file__).parents[1] / "alerts" / "data" / "outgoing_events.json"


def _event(index: int, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    event_id = f"0b7c3f1e-0000-4000-8000-{index:012d}"
    return {**_ENVELOPE, "event_id": event_id, "type": event_type, "data": data}


def fast_samples() -> list[dict[str, Any]]:
    spend = {"qualifying_purchases": 3, "qualifying_spend": "310.00", "currency": "EUR"}
    settled = {
        "order_id": "o-1",
        "merchant_id": "m-1",
        "points": 12,
        "amount": "12.50",
        "currency": "GBP",
        "fully_returned": False,
        "settled_lifetime_points": 40,
        "settled_purchase_count": 2,
        "first_settled_purchase": False,
    }
    refund = {"compensation_id": "k-1", "merchant_id": "m-1", "order_id": "o-1"}
    alerts = orjson.loads(_OUTGOING_ALERTS.read_bytes())
    return [
        orjson.loads(make_purchases(1).values[0]),
        RETURN,
        INCIDENT,
        _event(
            3,
            "tier.changed",
            {**_SNAPSHOT, "previous_tier": "member", "reason": "qualified", **spend},
        ),
        _event(4, "points.settled", {**_SNAPSHOT, **settled}),
        _event(5, "compensation.granted", {**_BREACH, "decided_by": "policy"}),
        _event(6, "compensation.review_required", {**_BREACH, "reasons": ["customer_refund_cap"]}),
        _event(7, "refund.instructed", {**refund, "amount": "9.99", "currency": "KWD"}),
        *(a for a in alerts if a["type"] in ("alert.raised", "alert.escalated")),
    ]


def _fast_outcome(document: dict[str, Any], model: Any = None) -> tuple[str, str] | None:
    """What the fast validator of `model` (by default the document's) makes of a document;
    None when it refuses it."""
    model = model or _model_for(document)
    try:
        event = FAST_VALIDATORS[model].validate_python(document)
    except ValidationError:
        return None
    assert type(event) is model, "the fast validator must build the model's own class"
    return ("accepted", _everything(event))


def _model_outcome(document: dict[str, Any], model: Any = None) -> tuple[str, str]:
    try:
        event = (model or _model_for(document)).model_validate(document)
    except ValidationError:
        return ("rejected", "")
    return ("accepted", _everything(event))


def _everything(node: Any) -> str:
    """Every value, unknown field, field set and class of a model and the models in it."""
    if isinstance(node, BaseModel):
        fields = {name: _everything(getattr(node, name)) for name in type(node).model_fields}
        extra = {k: _everything(v) for k, v in (node.__pydantic_extra__ or {}).items()}
        return repr((type(node), fields, extra, sorted(node.model_fields_set)))
    if isinstance(node, list | tuple):
        return repr([_everything(child) for child in node])
    return repr((type(node), node))


def test_every_fast_validator_has_samples() -> None:
    sampled = {_model_for(s) for s in fast_samples()}
    assert sampled == set(FAST_VALIDATORS), "add a sample of each new fast-validated event"


def test_fast_validators_take_the_common_case() -> None:
    """Good events with cents take the fast path; the model's slower path is the exception."""
    for document in fast_samples():
        assert _fast_outcome(document) == _model_outcome(document), document["type"]
    for raw in make_purchases(200).values:
        document = orjson.loads(raw)
        assert _fast_outcome(document) == _model_outcome(document)
    # and the rewritten schema is the one in use (not the model's own validator, which
    # pydantic-core substitutes for a complete model's schema unless told otherwise)
    trailing_zero = _replaced(fast_samples()[0], ("data", "amount"), "12.500")
    assert _fast_outcome(trailing_zero) is None
    assert _model_outcome(trailing_zero)[0] == "accepted"


def test_fast_validators_accept_only_what_the_model_accepts_and_build_the_same() -> None:
    taken = refused = refused_but_valid = 0
    for base in fast_samples():
        model = _model_for(base)
        for path in _paths(base):
            for value in POOL:
                document = _replaced(base, path, value)
                fast, full = _fast_outcome(document, model), _model_outcome(document, model)
                if fast is None:
                    refused += 1
                    refused_but_valid += full[0] == "accepted"
                else:
                    taken += 1
                    assert fast == full, (document, path, value)
    # both sides of the subset are exercised, and valid documents outside the fast path
    # ("12.500", JPY, KWD with three decimals) are among those it leaves to the model
    assert taken > 500 and refused > 2000 and refused_but_valid > 30, (
        taken,
        refused,
        refused_but_valid,
    )


@given(
    amount=st.one_of(
        st.text(alphabet="0123456789.-+eE _\n\u0661", max_size=24),
        st.decimals(min_value=0, max_value=10**15, allow_nan=False).map(str),
    ),
    currency=st.one_of(st.sampled_from(sorted(known_currencies())), st.text(max_size=4)),
)
def test_fast_money_and_currency_are_a_subset_of_the_full_checks(
    amount: str, currency: str
) -> None:
    document = _replaced(orjson.loads(make_purchases(1).values[0]), ("data", "amount"), amount)
    document["data"]["currency"] = currency
    document["data"]["items"] = [dict(i, unit_price=amount) for i in document["data"]["items"]]
    fast = _fast_outcome(document)
    if fast is not None:
        assert fast == _model_outcome(document)


def test_the_fast_schema_differs_only_in_the_checks_it_replaces() -> None:
    """Every Python check the fast validators left out is money, currency or a marked
    precision check; every other Python check of the model is still in it."""
    replaced = {f._money_text, f._currency, *f.IMPLIED_BY_FAST_MONEY}
    for model in FAST_VALIDATORS:
        original = set(_python_checks(model.__pydantic_core_schema__))
        kept = set(_python_checks(_Rewrite().node(model.__pydantic_core_schema__))) - {Decimal}
        assert kept <= original and original - kept <= replaced, model.__name__
        assert kept == original - replaced, model.__name__


def _python_checks(node: Any) -> Iterator[Callable[..., Any]]:
    if isinstance(node, dict):
        function = node.get("function")
        if isinstance(function, dict) and callable(function.get("function")):
            yield function["function"]
        for key, value in node.items():
            if key not in ("metadata", "serialization"):
                yield from _python_checks(value)
    elif isinstance(node, list | tuple):
        for child in node:
            yield from _python_checks(child)
