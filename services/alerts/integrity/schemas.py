"""The body of an invariant check page."""

from __future__ import annotations

from pydantic import Field

from services.alerts.invariants import ViolationKind
from services.alerts.lapse.schemas import ResponseModel


class InvariantViolationOut(ResponseModel):
    customer_id: str
    kind: ViolationKind
    detail: str


class InvariantReport(ResponseModel):
    """The customers checked on this page, and who breaks an invariant (as points reports)."""

    checked_customers: int
    sound: bool = Field(description="True when nothing in the checked range breaks an invariant")
    breaking_customers: list[str]
    violations: list[InvariantViolationOut]
    next_cursor: str | None = Field(description="Continue with this cursor; null on the last page")
