"""Response body of the invariant check."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.points.domain.invariants import InvariantViolation, ViolationKind


class ViolationOut(BaseModel):
    customer_id: str
    kind: ViolationKind
    detail: str


class InvariantReport(BaseModel):
    """The books of the customers checked, and who breaks them."""

    checked_customers: int
    sound: bool = Field(description="True when no checked customer breaks an invariant")
    breaking_customers: list[str]
    violations: list[ViolationOut]
    ledger_out_of_step: list[str] | None = Field(
        description=(
            "First page only: every customer whose stored balance differs from the sum of "
            "their ledger entries, found in one scan over all customers"
        )
    )
    next_cursor: str | None


def violation_out(violation: InvariantViolation) -> ViolationOut:
    return ViolationOut(
        customer_id=violation.customer_id, kind=violation.kind, detail=violation.detail
    )
