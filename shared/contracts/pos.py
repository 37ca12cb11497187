"""Events a point-of-sale or operations system publishes."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts.envelope import EventEnvelope
from shared.contracts.fields import Currency, Identifier, Money, Quantity, minor_units


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
    def _precision_fits_currency(self) -> PurchaseCompletedData:
        minor_units(self.amount, self.currency)
        for item in self.items:
            minor_units(item.unit_price, self.currency)
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
    def _precision_fits_currency(self) -> PurchaseReturnedData:
        minor_units(self.refunded_amount, self.currency)
        return self

    @property
    def refunded_minor(self) -> int:
        return minor_units(self.refunded_amount, self.currency)


class MeasureUnit(StrEnum):
    SECONDS = "seconds"
    MINUTES = "minutes"
    HOURS = "hours"
    BREACHED = "breached"  # a yes/no promise: room not as booked, equipment failure


class Measurement(_Data):
    value: Decimal = Field(
        ge=0, le=1_000_000, description="e.g. 17 (minutes); 1 for a yes/no breach."
    )
    unit: MeasureUnit

    @model_validator(mode="before")
    @classmethod
    def _no_float(cls, raw: object) -> object:
        if isinstance(raw, dict) and isinstance(raw.get("value"), float):
            raise ValueError("measured value must be an integer or a decimal string, never a float")
        return raw


class ServiceIncidentData(_Data):
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
    def _precision_fits_currency(self) -> ServiceIncidentData:
        minor_units(self.order_amount, self.currency)
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
