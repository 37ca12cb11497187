"""Guarantee policy and compensation-limit bodies (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from services.rewards.vouchers.schemas import NEXT_CURSOR, Body, Timestamp, View
from shared.contracts.fields import Identifier

Count = Annotated[int, Field(ge=0, le=1_000_000_000_000)]


class TierDocument(Body):
    over: Annotated[int, Field(ge=0, le=1_000_000)]
    vouchers: list[Identifier] = Field(default_factory=list, max_length=20)
    points: Annotated[int, Field(gt=0, le=100_000_000)] | None = None
    refund_basis_points: Annotated[int, Field(gt=0, le=1_000_000)] | None = None


class PolicyDocument(Body):
    unit: str = Field(pattern="^(minutes|seconds|breach)$")
    tiers: list[TierDocument] = Field(min_length=1, max_length=20)
    claim_window_days: Annotated[int, Field(ge=1, le=365)] = 7
    # The highest tier a customer's own report reaches without an incident or a person.
    self_reported_max_tier: Annotated[int, Field(ge=0, le=20)] = 1


class LimitsDocument(Body):
    customer_refund_cap_minor: Count | None = None
    customer_breach_cap: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    merchant_monthly_budget_minor: Count | None = None
    customer_points_cap: Count | None = None
    merchant_monthly_points_budget: Count | None = None


class TierView(View):
    over: int
    vouchers: list[str]
    points: int | None
    refund_basis_points: int | None


class PolicyView(View):
    """A policy as just stored (the document as sent, defaults filled in)."""

    merchant_id: str
    promise_kind: str
    unit: str
    tiers: list[TierView]
    claim_window_days: int
    self_reported_max_tier: int


class StoredPolicy(View):
    """A stored policy; its tiers in their stored form (only the keys a tier uses)."""

    merchant_id: str
    promise_kind: str
    unit: str
    tiers: list[dict[str, Any]] = Field(
        description="Each {over, vouchers?, points?, refund_basis_points?}"
    )
    claim_window_days: int
    updated_at: Timestamp
    self_reported_max_tier: int


class PoliciesPage(View):
    policies: list[StoredPolicy]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class LimitsView(View):
    merchant_id: str
    customer_refund_cap_minor: int | None
    customer_breach_cap: int | None
    merchant_monthly_budget_minor: int | None
    customer_points_cap: int | None
    merchant_monthly_points_budget: int | None
