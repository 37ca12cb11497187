"""Events a point-of-sale or operations system publishes."""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from shared.contracts.envelope import EventEnvelope
from shared.contracts.fields import (
    Currency,
    Identifier,
    Money,
    Quantity,
    check_minor_units,
    implied_by_fast_money,
    minor_units,
)


class _Data(BaseModel):
    # Unknown fields are kept: producers may add fields before consumers know them.
    model_config = ConfigDict(extra="allow", frozen=True)


class Channel(StrEnum):
    IN_STORE = "in_store"
    ONLINE = "online"
    APP = "app"
    PHONE = "phone"


class PurchaseItem(_Data):
    sku: Identifier
    category: Identifier
    quantity: Quantity
    unit_price: Money


class PurchaseCompletedData(_Data):
    order_id: Identifier
    merchant_id: Identifier
    store_id: Identifier
    amount: Money
    currency: Currency
    items: list[PurchaseItem] = Field(default_factory=list, max_length=1000)
    channel: Channel = Channel.IN_STORE

    @model_validator(mode="after")
    @implied_by_fast_money
    def _precision_fits_currency(self) -> PurchaseCompletedData:
        check_minor_units(self.amount, self.currency)
        for item in self.items:
            check_minor_units(item.unit_price, self.currency)
        return self

    @property
    def amount_minor(self) -> int:
        return minor_units(self.amount, self.currency)


class ReturnedItem(_Data):
    sku: Identifier
    quantity: Quantity
    unit_price: Money | None = None


class PurchaseReturnedData(_Data):
    return_id: Identifier = Field(description="Unique per return (partial returns each have one).")
    order_id: Identifier
    merchant_id: Identifier
    refunded_amount: Money
    currency: Currency
    items: list[ReturnedItem] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    @implied_by_fast_money
    def _precision_fits_currency(self) -> PurchaseReturnedData:
        check_minor_units(self.refunded_amount, self.currency)
        return self

    @property
    def refunded_minor(self) -> int:
        return minor_units(self.refunded_amount, self.currency)


class MeasureUnit(StrEnum):
    SECONDS = "seconds"
    MINUTES = "minutes"
    HOURS = "hours"
    BREACHED = "breached"  # a yes/no promise: room not as booked, equipment failure


# [0-9], not `\d`: Python's `\d` takes any script's digits, the published schema's does not.
_MEASURED_PATTERN = r"^[0-9]{1,7}(\.[0-9]{1,3})?$"


def _measured_value(value: object) -> Decimal:
    """A whole JSON number (17) or a decimal string ("12.5"), like money: never a float.

    A JSON number with a fraction (12.5) is refused: it is a binary float on the way in
    and out of most producers, so 0.1 + 0.2 style errors could move a reading across a
    tier boundary. The published schema says the same (integer, or string by pattern).
    """
    if isinstance(value, bool | float):
        raise ValueError(
            'measured value must be a whole number (17) or a decimal string ("12.5"), '
            "never a JSON number with a fraction (a float)"
        )
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and re.fullmatch(_MEASURED_PATTERN, value):
        return Decimal(value)
    raise ValueError('measured value must be a whole number or a decimal string such as "12.5"')


MeasuredValue = Annotated[
    Decimal,
    BeforeValidator(_measured_value),
    Field(ge=0, le=1_000_000),
    PlainSerializer(lambda d: str(d), return_type=str, when_used="always"),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "integer", "minimum": 0, "maximum": 1_000_000},
                {"type": "string", "pattern": _MEASURED_PATTERN},
            ],
            "description": 'e.g. 17 or "12.5" (minutes); 1 for a yes/no breach. A decimal '
            "with a fraction is a string, never a JSON number.",
            "examples": [17, "12.5"],
        }
    ),
]


class Measurement(_Data):
    value: MeasuredValue
    unit: MeasureUnit


class ServiceIncidentData(_Data):
    """What operations measured on an order. `order_amount` and `currency` are informative:
    compensation is computed on the amount rewards recorded from `pos.purchases`."""

    incident_id: Identifier
    merchant_id: Identifier
    promise_kind: Identifier = Field(
        examples=["dish_wait_time", "check_in_time", "room_not_as_booked"]
    )
    measured: Measurement
    order_id: Identifier
    order_amount: Money
    currency: Currency

    @model_validator(mode="after")
    @implied_by_fast_money
    def _precision_fits_currency(self) -> ServiceIncidentData:
        check_minor_units(self.order_amount, self.currency)
        return self

    @property
    def order_amount_minor(self) -> int:
        return minor_units(self.order_amount, self.currency)


class PurchaseCompleted(EventEnvelope):
    """A customer paid for an order at a partner merchant."""

    type: Literal["purchase.completed"]
    version: Literal[1]
    data: PurchaseCompletedData


class PurchaseReturned(EventEnvelope):
    """Part or all of an order was refunded."""

    type: Literal["purchase.returned"]
    version: Literal[1]
    data: PurchaseReturnedData


class ServiceIncident(EventEnvelope):
    """An operations system measured a service promise (kept or missed)."""

    type: Literal["service.incident"]
    version: Literal[1]
    data: ServiceIncidentData
