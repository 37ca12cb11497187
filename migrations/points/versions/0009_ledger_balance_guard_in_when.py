"""The guard on `accounts.ledger_balance` decides in its trigger's WHEN clause, so the
ledger trigger's own updates no longer call a PL/pgSQL function per account row.

`accounts_guard_ledger_balance` (points_0002) refuses a change of `ledger_balance` made
anywhere but one trigger level deep, i.e. by the ledger's insert trigger: its function
raised when `pg_trigger_depth() < 2`. A purchase's account row is updated by exactly that
trigger, so the function ran for every account of every batch only to find nothing wrong.
The same test now sits in the WHEN clause, evaluated before the function is called, where
the depth is one less (the call is what raises it): `pg_trigger_depth() < 1`. The
function runs only for the changes it refuses, and still checks the depth itself.

The ledger trigger's UPDATE of 3,641 accounts (a 4,000-purchase batch) took 36.4 and 36.9
ms with the function called per row, 34.4 and 33.2 ms without (auto_explain, replay of
the accrual's writes): ~0.7 µs of PostgreSQL's CPU per purchase.

Revision ID: points_0009
Revises: points_0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "points_0009"
down_revision: str | None = "points_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _guard(when: str) -> list[str]:
    # Dropped and created in the migration's one transaction: no moment without the guard.
    return [
        "DROP TRIGGER accounts_guard_ledger_balance ON accounts",
        "CREATE TRIGGER accounts_guard_ledger_balance BEFORE UPDATE ON accounts"
        f" FOR EACH ROW WHEN ({when})"
        " EXECUTE FUNCTION points_guard_ledger_balance()",
    ]


_CHANGED = "NEW.ledger_balance IS DISTINCT FROM OLD.ledger_balance"


def upgrade() -> None:
    for statement in _guard(f"{_CHANGED} AND pg_trigger_depth() < 1"):
        op.execute(statement)


def downgrade() -> None:
    for statement in _guard(_CHANGED):
        op.execute(statement)
