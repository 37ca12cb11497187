"""Request and response bodies of the voucher routes, and the types every rewards route shares.

`Timestamp` keeps the wire format the routes always had (`datetime.isoformat()`, so UTC
reads `+00:00`, not pydantic's `Z`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationInfo, field_validator

from shared.contracts.fields import Currency, Identifier, Money, minor_units
from shared.http.pagination import MAX_CURSOR_LENGTH
from shared.money import format_money

Timestamp = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str)]
CustomerId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@-]+$")]
AdminKey = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:@/-]+$")]
VoucherCode = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9 -]+$")]
Cursor = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_CURSOR_LENGTH,
        description="`next_cursor` of the previous page; omit for the first page",
    ),
]
NEXT_CURSOR = "Pass as `cursor` for the next page; null on the last page"


class Body(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class View(BaseModel):
    """A response body, built from stored rows."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")


class RedeemRequest(Body):
    merchant_id: Identifier
    store_id: Identifier | None = None


class VoucherView(View):
    voucher_id: str
    code: str
    reward_code: str
    origin: str
    merchant_id: str | None
    issued_at: Timestamp
    expires_at: Timestamp
    redeemed_at: Timestamp | None
    redeemed_by: str | None
    status: str = Field(description="redeemable, redeemed or expired at the time of the answer")


class PointsView(View):
    available: int
    lifetime_points: int
    settled_points: int
    tier: str
    first_purchase_at: Timestamp | None
    as_of: Timestamp


class CustomerRewards(View):
    """One page of a customer's vouchers (newest first) and guarantee claims (newest first).

    Both lists are paged by the same `limit` and `cursor`; a list that is exhausted is
    empty on later pages.
    """

    customer_id: str
    points: PointsView | None
    vouchers: list[VoucherView]
    guarantee_claims: list[str]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class RewardDefinition(Body):
    title: str = Field(min_length=1, max_length=200)
    valid_days: Annotated[int, Field(ge=1, le=3650)]
    merchant_id: Identifier | None = None
    # What one voucher is worth: compensation caps count it as money (guarantee_limits).
    value: Money | None = None
    currency: Currency | None = Field(default=None, validate_default=True)

    @field_validator("currency")
    @classmethod
    def _value_has_currency(cls, currency: str | None, info: ValidationInfo) -> str | None:
        value = info.data.get("value")
        if (value is None) != (currency is None):
            raise ValueError("value and currency go together: give both or neither")
        if value is not None and currency is not None:
            minor_units(value, currency)
        return currency

    def stored(self) -> dict[str, Any]:
        """The row's columns: the value in integer minor units."""
        values = self.model_dump(exclude={"value"})
        value, currency = self.value, self.currency
        values["value_minor"] = None if value is None else minor_units(value, str(currency))
        return values


class RewardDefinitionView(View):
    reward_code: str
    title: str
    valid_days: int
    merchant_id: str | None
    value: str | None = Field(description="What one voucher is worth, a decimal string")
    currency: str | None

    @classmethod
    def of(cls, row: Any) -> RewardDefinitionView:
        view = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
        minor, currency = view.pop("value_minor", None), view.get("currency")
        view["value"] = None if minor is None else format_money(minor, str(currency))
        return cls.model_validate(view)


class RewardDefinitionsPage(View):
    rewards: list[RewardDefinitionView]
    next_cursor: str | None = Field(description=NEXT_CURSOR)
