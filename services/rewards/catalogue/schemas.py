"""Catalogue item bodies: what admins send, what partner apps and admins read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, field_validator

from services.rewards.vouchers.schemas import NEXT_CURSOR, Body, Timestamp, View
from shared.contracts.fields import Identifier

Count = Annotated[int, Field(ge=0, le=1_000_000_000_000)]


class ItemDocument(Body):
    reward_code: Identifier
    title: str = Field(min_length=1, max_length=200)
    points_cost: Annotated[int, Field(gt=0, le=100_000_000)]
    claimable_from: AwareDatetime
    claimable_until: AwareDatetime
    voucher_valid_days: Annotated[int, Field(ge=1, le=3650)]
    total_stock: Annotated[int, Field(ge=0, le=100_000_000)] | None = None
    budget_minor: Count | None = None
    unit_cost_minor: Count = 0
    per_customer_limit: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    eligible_tiers: list[str] = Field(default_factory=list, max_length=4)
    merchant_id: Identifier | None = None

    @field_validator("claimable_from", "claimable_until")
    @classmethod
    def _storable(cls, moment: datetime) -> datetime:
        # PostgreSQL and asyncpg cannot hold every instant Python can (year 1 minus an offset).
        if not 2000 <= moment.astimezone(UTC).year <= 9000:
            raise ValueError("must be between the years 2000 and 9000")
        return moment


class ItemView(View):
    """A stored catalogue item."""

    item_id: str
    reward_code: str
    title: str
    points_cost: int
    claimable_from: Timestamp
    claimable_until: Timestamp
    voucher_valid_days: int
    total_stock: int | None
    budget_minor: int | None
    unit_cost_minor: int
    per_customer_limit: int | None
    eligible_tiers: list[str]
    merchant_id: str | None
    units_claimed: int

    @classmethod
    def of(cls, row: Any) -> ItemView:
        return cls.model_validate({**row._mapping, "eligible_tiers": list(row.eligible_tiers)})


class ClaimableItem(ItemView):
    """An item as partner apps read it, with the units still free (null: unlimited)."""

    units_left: int | None

    @classmethod
    def of(cls, row: Any) -> ClaimableItem:
        stock = row.total_stock
        left = None if stock is None else max(stock - row.units_claimed, 0)
        mapping = {**row._mapping, "eligible_tiers": list(row.eligible_tiers), "units_left": left}
        return cls.model_validate(mapping)


class Catalogue(View):
    items: list[ClaimableItem]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class CatalogueAdmin(View):
    items: list[ItemView]
    next_cursor: str | None = Field(description=NEXT_CURSOR)
