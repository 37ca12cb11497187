"""Report bodies (admin): budgets, invariants."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from services.rewards.vouchers.schemas import NEXT_CURSOR, Timestamp, View


class BudgetLine(View):
    """`spent_minor` is what the budget counts: refunds plus the value of vouchers."""

    merchant_id: str
    refunded_minor: int
    spent_minor: int
    budget_minor: int | None
    remaining_minor: int | None
    held_for_review: int


class Budgets(View):
    month_start: Timestamp
    month_end: Timestamp
    merchants: list[BudgetLine]
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class ViolationView(View):
    invariant: str
    subject: str
    detail: dict[str, Any] = Field(description="The breaking row's columns")


class InvariantReport(View):
    ok: bool
    as_of: Timestamp
    checked: list[str]
    violations: list[ViolationView]
    truncated: list[str] = Field(
        description="Invariants with more than `limit` breaking rows (only `limit` listed)"
    )
