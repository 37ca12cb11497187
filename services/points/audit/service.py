"""Checking the books page by page: every invariant of `domain.invariants` per customer,
and, on the first page, one scan of every customer's stored balance against the ledger."""

from __future__ import annotations

from dataclasses import dataclass

from services.points.domain.invariants import InvariantViolation
from services.points.uow import PointsUnitOfWork


@dataclass(frozen=True)
class BooksCheck:
    """One page of the check: who was checked, what broke, and whether more follow."""

    checked: list[str]
    violations: list[InvariantViolation]
    ledger_out_of_step: list[str] | None  # first page only
    more: bool

    @property
    def breaking(self) -> list[str]:
        found = {v.customer_id for v in self.violations} | set(self.ledger_out_of_step or ())
        return sorted(found)


async def check_books(uow: PointsUnitOfWork, limit: int, after: str | None) -> BooksCheck:
    """The books of up to `limit` customers after `after`, in full."""
    customers = await uow.audit.customers_page(limit + 1, after)
    checked = customers[:limit]
    violations = await uow.audit.violations_of(checked)
    out_of_step = await uow.audit.ledger_out_of_step() if after is None else None
    return BooksCheck(checked, violations, out_of_step, more=len(customers) > limit)
