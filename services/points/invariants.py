"""The points service's invariant checks: the books balance.

`invariant_violations` is the quick, set-based check an operator runs directly against the
database (`loyalty invariants`): customers whose ledger balance differs from their lots
minus debt. `account_violations` checks one customer's books in full (see
`domain.invariants`); `/v1/admin/invariants` runs the full check page by page.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.audit.repository import AuditRepository
from services.points.domain.invariants import InvariantViolation


async def invariant_violations(conn: AsyncConnection, limit: int = 1000) -> list[str]:
    """Customers whose ledger balance differs from their lots minus debt (one SQL scan)."""
    return await AuditRepository(conn).out_of_balance(limit)


async def account_violations(
    conn: AsyncConnection, customer_id: str
) -> tuple[InvariantViolation, ...]:
    """Every way the customer's books disagree (empty when sound); see domain.invariants."""
    return tuple(await AuditRepository(conn).violations_of([customer_id]))
